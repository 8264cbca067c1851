"""HTTP/2 floods and abuse against the agent (issue 9): every known attack
must cost the attacker its connection (GOAWAY, RST_STREAM or a closed
socket) or be held by flow control, and nothing more. For each attack:

- the attacker runs in its own process (this file run as a script:
  `python3 test_floods.py ATTACK PORT SECONDS`), written with hyperframe /
  hpack at the frame level, reconnecting whenever it is thrown out, and
  prints what the server did to it as JSON;
- a well-behaved grpcio client on its own TLS connection keeps calling Echo
  meanwhile: its p99 latency must stay within 2x its baseline measured just
  before and just after, in the same test (the larger of the two; or under
  an absolute floor of LAT_FLOOR_S, so a loaded 2-core CI box cannot fail a
  healthy server on noise);
- the agent's RSS (/proc/<pid>/status) is sampled all along and must stay
  within RSS_GROWTH of its value at the start of the test.

All attacks share one agent (started with --handshake-timeout-ms 1000 for
the slowloris case and --max-connections above the idle-connection count);
each test ends by checking that the agent still answers. The whole file
runs in 70-90 s.
"""
import json
import os
import resource
import select
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

try:  # script mode (the attacker process) needs none of the test machinery
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ECHO = "/hostagent.test.v1.TestService/Echo"
BIDI = "/hostagent.test.v1.TestService/Bidi"
SSTREAM = "/hostagent.test.v1.TestService/ServerStream"

ASAN = os.environ.get("HA_SANITIZE") == "address"
TSAN = os.environ.get("HA_SANITIZE") == "thread"
# The agent's RSS may grow by at most this much during one attack. The
# largest legitimate share is the zero-window case: 100 streams x 256 KiB
# of queued response (stream_out_high_water) = 25 MiB. Sanitizers add their
# own memory per allocation (TSan's shadow and history: +300 MiB seen in the
# zero-window case); there the point is races and memory errors under the
# floods, the bound is judged on the normal build.
RSS_GROWTH = (64 + (192 if ASAN else 0) + (960 if TSAN else 0)) << 20
# 30 ms, not 20: the CI box is 2 shared cores where a parallel build alone
# puts the healthy baseline p99 at 10-40 ms. Regressions this file caught
# (the empty-DATA log flood) cost 150-220 ms.
# Under ASan every loop turn costs 2-5x: a rapid-reset turn (up to 256 KiB
# of frames) then stalls the loop for tens of ms. There the point is memory
# safety under the floods; latency is judged on the normal build.
LAT_FLOOR_S = 0.100 if ASAN or TSAN else 0.030
# Issue 9 asks for 10,000; 2,000 fit CI's time budget. HA_FLOOD_IDLE_CONNS
# sets another count (10,000 measured: docs/FUZZING.md).
IDLE_CONNS = int(os.environ.get("HA_FLOOD_IDLE_CONNS", "2000"))
# Idle connections cost ~13 KiB each (TLS-less h2c: nghttp2 session, our
# buffers); past 2,000 of them the bound grows with the count.
IDLE_RSS_GROWTH = max(RSS_GROWTH, RSS_GROWTH + (IDLE_CONNS - 2000) * (16 << 10))
MAX_STREAMS = 100      # the agent's default SETTINGS_MAX_CONCURRENT_STREAMS

NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 0, 1, 3, 7, 8, 11


# --- the attacker (runs in a subprocess) -----------------------------------

class Raw:
    """One attacking HTTP/2 connection at the frame level."""

    def __init__(self, port, tls=False, settings=None, timeout=5.0):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            s = ctx.wrap_socket(s, server_hostname="localhost")
        self.sock = s
        self.enc = hpack.Encoder()
        self.inbuf = b""
        self.goaway = None
        self.resets = {}
        self.closed = False
        self.blocked = False
        self.pings_acked = 0
        self.sid = 1
        f = SettingsFrame(0)
        f.settings = dict(settings or {})
        self.send(PREFACE + f.serialize())

    def send(self, data, timeout=None):
        """False once the server closed us, or when it stopped reading (the
        send did not complete within |timeout|: flow control by TCP)."""
        if self.closed:
            return False
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
            return True
        except socket.timeout:
            self.blocked = True
            return False
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.closed = True
            return False
        finally:
            if timeout is not None:
                self.sock.settimeout(5.0)

    def poll(self, wait=0.0):
        """Reads what the server sent; acknowledges its SETTINGS."""
        end = time.monotonic() + wait
        while not self.closed:
            left = max(0.0, end - time.monotonic())
            p = select.poll()   # not select(): fds past 1024 (idle_conns)
            p.register(self.sock, select.POLLIN)
            r = p.poll(left * 1000)
            if not r:
                if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
                    pass
                else:
                    return
            try:
                self.sock.settimeout(0.5)
                data = self.sock.recv(1 << 20)
            except (socket.timeout, ssl.SSLWantReadError):
                return
            except (ConnectionResetError, ssl.SSLError, OSError):
                self.closed = True
                return
            if not data:
                self.closed = True
                return
            self.inbuf += data
            self._parse()
            if time.monotonic() >= end and not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
                return

    def _parse(self):
        while len(self.inbuf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(self.inbuf[:9]))
            if len(self.inbuf) < 9 + length:
                return
            f.parse_body(memoryview(self.inbuf[9:9 + length]))
            self.inbuf = self.inbuf[9 + length:]
            if isinstance(f, GoAwayFrame):
                self.goaway = f.error_code
            elif isinstance(f, RstStreamFrame):
                self.resets[f.stream_id] = f.error_code
            elif isinstance(f, SettingsFrame) and "ACK" not in f.flags:
                self.send(SettingsFrame(0, flags=["ACK"]).serialize())
            elif isinstance(f, PingFrame) and "ACK" in f.flags:
                self.pings_acked += 1

    def next_sid(self):
        sid = self.sid
        self.sid += 2
        return sid

    def headers(self, sid, path=ECHO, end_stream=False, extra=()):
        hdrs = [(":method", "POST"), (":scheme", "http"), (":authority", "localhost"), (":path", path),
                ("content-type", "application/grpc"), ("te", "trailers")] + list(extra)
        f = HeadersFrame(sid, self.enc.encode(hdrs))
        f.flags.add("END_HEADERS")
        if end_stream:
            f.flags.add("END_STREAM")
        return f.serialize()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def attack_rapid_reset(port, conn, out):
    """CVE-2023-44487: HEADERS then RST_STREAM, as fast as possible."""
    n = 0   # per connection: the cap must not end later connections early
    while not conn.closed:
        batch = b""
        for _ in range(100):
            sid = conn.next_sid()
            batch += conn.headers(sid) + RstStreamFrame(sid, error_code=CANCEL).serialize()
        out["streams"] = out.get("streams", 0) + 100
        n += 100
        if not conn.send(batch):
            break
        conn.poll(0)
        if n > 200000:
            break


def attack_continuation(port, conn, out):
    """CVE-2024-28182: a header block that never ends."""
    sid = conn.next_sid()
    block = conn.enc.encode([(":method", "POST"), (":scheme", "http"), (":path", ECHO),
                             (":authority", "localhost")])
    conn.send(HeadersFrame(sid, block).serialize())  # no END_HEADERS
    junk = hpack.Encoder().encode([("x-junk", "a" * 100)]) * 10
    n = 0
    while not conn.closed and n < 100000:
        if not conn.send(ContinuationFrame(sid, junk).serialize()):
            break
        n += 1
        conn.poll(0)
    out["continuations"] = out.get("continuations", 0) + n


def attack_hpack_bomb(port, conn, out):
    """One 4000-byte header value in the dynamic table, then requests that
    reference it 2000 times (1 byte each: ~8 MB decoded per request)."""
    sid = conn.next_sid()
    conn.enc.header_table_size = 4096
    first = conn.enc.encode([(":method", "POST"), (":scheme", "http"), (":path", ECHO),
                             (":authority", "localhost"), ("x-bomb", "b" * 4000)])
    f = HeadersFrame(sid, first)
    f.flags.add("END_HEADERS")
    f.flags.add("END_STREAM")
    conn.send(f.serialize())
    # The entry just added is dynamic index 62: indexed field 0x80 | 62.
    # The pseudo-headers come again as static indexes / literals.
    pseudo = bytes([0x83, 0x86]) + bytes([0x04, len(ECHO)]) + ECHO.encode() + bytes([0x01, 9]) + b"localhost"
    bombs = 0
    while not conn.closed and bombs < 200:
        sid = conn.next_sid()
        f = HeadersFrame(sid, pseudo + bytes([0xBE]) * 2000)
        f.flags.add("END_HEADERS")
        f.flags.add("END_STREAM")
        if not conn.send(f.serialize()):
            break
        bombs += 1
        conn.poll(0.005)
    conn.poll(0.5)
    out["bombs"] = out.get("bombs", 0) + bombs
    out["bombs_reset"] = out.get("bombs_reset", 0) + sum(1 for s in conn.resets if s > 1)


def attack_ping_flood(port, conn, out):
    """PINGs, never reading the ACKs."""
    ping = PingFrame(0, opaque_data=b"12345678").serialize() * 1000
    n = 0
    while n < 2000000 and conn.send(ping, timeout=2.0):
        n += 1000
    out["pings"] = out.get("pings", 0) + n


def attack_settings_flood(port, conn, out):
    """SETTINGS frames, never reading the ACKs."""
    f = SettingsFrame(0)
    f.settings = {SettingsFrame.INITIAL_WINDOW_SIZE: 65535, SettingsFrame.MAX_FRAME_SIZE: 16384}
    batch = f.serialize() * 1000
    n = 0
    while n < 2000000 and conn.send(batch, timeout=2.0):
        n += 1000
    out["settings"] = out.get("settings", 0) + n


def attack_empty_data(port, conn, out):
    """A client stream, then DATA frames with no payload and no END_STREAM."""
    sid = conn.next_sid()
    conn.send(conn.headers(sid, path=BIDI))
    empty = DataFrame(sid, b"").serialize() * 500
    n = 0
    while not conn.closed and n < 1000000:
        if not conn.send(empty):
            break
        n += 500
        conn.poll(0)
    out["empty_frames"] = out.get("empty_frames", 0) + n


def attack_zero_window(port, conn, out):
    """INITIAL_WINDOW_SIZE 0 and 100 big server streams, then never read."""
    # The connection was opened with INITIAL_WINDOW_SIZE 0 (see main()).
    # StreamRequest{count=100000, size=65536}: field 1 varint, field 2 varint.
    req = bytes([0x08, 0xA0, 0x8D, 0x06, 0x10, 0x80, 0x80, 0x04])
    env = struct.pack(">BI", 0, len(req)) + req
    batch = b""
    for _ in range(MAX_STREAMS):
        sid = conn.next_sid()
        batch += conn.headers(sid, path=SSTREAM)
        f = DataFrame(sid, env)
        f.flags.add("END_STREAM")
        batch += f.serialize()
    conn.send(batch)
    out["streams"] = out.get("streams", 0) + MAX_STREAMS
    # Stall: keep the connection, read nothing, until the deadline.
    time.sleep(max(0.0, out["deadline"] - time.monotonic()))


def attack_window_update_storm(port, conn, out):
    """Tiny WINDOW_UPDATEs on the connection and a stream, then one that
    overflows the window past 2^31-1 (a flow-control error)."""
    sid = conn.next_sid()
    conn.send(conn.headers(sid, path=BIDI))
    tiny = (WindowUpdateFrame(0, window_increment=1).serialize() +
            WindowUpdateFrame(sid, window_increment=1).serialize()) * 500
    n = 0
    while not conn.closed and n < 200000:
        if not conn.send(tiny):
            break
        n += 1000
        conn.poll(0)
    out["window_updates"] = out.get("window_updates", 0) + n
    conn.send(WindowUpdateFrame(0, window_increment=0x7FFFFFFF).serialize())
    conn.poll(1.0)


def attack_streams_past_limit(port, conn, out):
    """150 open client streams on one connection (limit 100)."""
    batch = b"".join(conn.headers(conn.next_sid(), path=BIDI) for _ in range(MAX_STREAMS + 50))
    conn.send(batch)
    deadline = time.monotonic() + 2.0
    while not conn.closed and time.monotonic() < deadline and len(conn.resets) < 50:
        conn.poll(0.1)
    out["refused"] = out.get("refused", 0) + sum(1 for e in conn.resets.values() if e == REFUSED_STREAM)
    out["streams"] = out.get("streams", 0) + MAX_STREAMS + 50
    time.sleep(0.5)


def slowloris(port, out, n=100):
    """n TCP connections to the TLS port that never start the handshake:
    each must be closed by the server after its handshake timeout."""
    t0 = time.monotonic()
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    closed_at = {}
    while len(closed_at) < n and time.monotonic() - t0 < 10:
        r, _, _ = select.select([s for s in socks if s not in closed_at], [], [], 0.5)
        for s in r:
            try:
                d = s.recv(1)
            except OSError:
                d = b""
            if not d:
                closed_at[s] = time.monotonic() - t0
    for s in socks:
        s.close()
    out["conns"] = n
    out["closed"] = len(closed_at)
    out["max_close_s"] = max(closed_at.values()) if closed_at else None
    out["min_close_s"] = min(closed_at.values()) if closed_at else None


def idle_conns(port, out, n=IDLE_CONNS):
    """n valid HTTP/2 connections (preface + SETTINGS) that then do nothing,
    held until the deadline."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 512:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n + 512, max(hard, n + 512)))
    conns = []
    for _ in range(n):
        c = Raw(port)
        conns.append(c)
    out["opened"] = len(conns)
    print(json.dumps({"ready": True}), flush=True)
    while time.monotonic() < out["deadline"]:
        time.sleep(0.1)
    alive = 0
    for c in conns:
        c.poll(0)
        alive += not c.closed
        c.close()
    out["alive_at_end"] = alive


ATTACKS = {
    "rapid_reset": attack_rapid_reset,
    "continuation": attack_continuation,
    "hpack_bomb": attack_hpack_bomb,
    "ping_flood": attack_ping_flood,
    "settings_flood": attack_settings_flood,
    "empty_data": attack_empty_data,
    "zero_window": attack_zero_window,
    "window_update_storm": attack_window_update_storm,
    "streams_past_limit": attack_streams_past_limit,
}


def main(argv):
    name, port, secs = argv[0], int(argv[1]), float(argv[2])
    # On a real host the attacker's CPU is not the server's. Here they
    # share two cores: the attacker yields, so the test measures what the
    # attack does to the server, not a busy-looping Python next to it.
    os.nice(19)
    out = {"attack": name, "deadline": time.monotonic() + secs}
    if name == "slowloris":
        slowloris(port, out)
    elif name == "idle_conns":
        idle_conns(port, out)
    else:
        # Reconnect whenever thrown out: a persistent attacker.
        conns = goaways = closed = blocked = 0
        codes = {}
        while time.monotonic() < out["deadline"]:
            settings = {SettingsFrame.INITIAL_WINDOW_SIZE: 0} if name == "zero_window" else None
            c = Raw(port, settings=settings)
            conns += 1
            ATTACKS[name](port, c, out)
            c.poll(0.3)
            if c.goaway is not None:
                goaways += 1
                codes[str(c.goaway)] = codes.get(str(c.goaway), 0) + 1
            closed += c.closed
            blocked += c.blocked
            for e in c.resets.values():
                out.setdefault("rst_codes", {})
                out["rst_codes"][str(e)] = out["rst_codes"].get(str(e), 0) + 1
            c.close()
            if name in ("zero_window", "streams_past_limit", "hpack_bomb"):
                break
        out.update(conns=conns, goaways=goaways, goaway_codes=codes, closed=closed, blocked=blocked)
    del out["deadline"]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)


# --- the tests ------------------------------------------------------------

from conftest import check_clean_exit, start_agent, tls_channel  # noqa: E402


@pytest.fixture(scope="module")
def pb(stubs):
    from hostagent.test.v1 import test_pb2, test_pb2_grpc
    return test_pb2, test_pb2_grpc


@pytest.fixture(scope="module")
def flood_agent(certs, tmp_path_factory):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE_CONNS * 2 + 1024
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    a = start_agent(certs, str(tmp_path_factory.mktemp("flood-agent")),
                    extra=["--handshake-timeout-ms", "1000", "--max-connections", str(IDLE_CONNS + 200)])
    yield a
    check_clean_exit(a)


@pytest.fixture(scope="module")
def client(flood_agent, pb):
    ch = tls_channel(flood_agent)
    stub = pb[1].TestServiceStub(ch)
    stub.Echo(pb[0].EchoRequest(message="warm-up"), timeout=10)
    yield stub
    ch.close()


def p99(samples):
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


def echo_latencies(stub, pb, n=None, until=None):
    out = []
    req = pb[0].EchoRequest(message="ping")
    while (n is not None and len(out) < n) or (until is not None and until()):
        t = time.perf_counter()
        assert stub.Echo(req, timeout=10).message == "ping"
        out.append(time.perf_counter() - t)
    return out


class RssSampler(threading.Thread):
    def __init__(self, agent):
        super().__init__(daemon=True)
        self.agent, self.peak, self.stop_ev = agent, agent.rss_bytes(), threading.Event()

    def run(self):
        while not self.stop_ev.wait(0.05):
            self.peak = max(self.peak, self.agent.rss_bytes())


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_count(agent, text):
    return agent.log().count(text)


def run_attack(agent, stub, pb, name, secs, port=None):
    """Baseline, then the attack in a subprocess while the good client keeps
    calling; checks latency and RSS, returns the attacker's report. A
    latency miss is retried once: a server that an attack really slows
    misses twice, background noise rarely does."""
    try:
        return attack_once(agent, stub, pb, name, secs, port)
    except LatencyMiss as e:
        print(f"retrying {name} after a latency miss: {e}")
        return attack_once(agent, stub, pb, name, secs, port, last=True)


class LatencyMiss(Exception):
    pass


def attack_once(agent, stub, pb, name, secs, port=None, last=False):
    base = echo_latencies(stub, pb, n=300)
    rss0 = agent.rss_bytes()
    cpu0, t0 = cpu_seconds(agent.proc.pid), time.monotonic()
    sampler = RssSampler(agent)
    sampler.start()
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), name,
                             str(port or agent.h2c_port), str(secs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.2)     # let the attack get going
    during = echo_latencies(stub, pb, until=lambda: proc.poll() is None)
    more = echo_latencies(stub, pb, n=max(0, 300 - len(during)))
    stdout, stderr = proc.communicate(timeout=60)
    sampler.stop_ev.set()
    sampler.join()
    assert proc.returncode == 0, f"attacker failed:\n{stderr}"
    report = json.loads(stdout.strip().splitlines()[-1])
    lat = during + more
    # A second baseline after the attack: on a shared box the background
    # load may change within the test; the larger baseline is the fair one.
    base = max(base, echo_latencies(stub, pb, n=300), key=p99)
    growth = sampler.peak - rss0
    cpu = cpu_seconds(agent.proc.pid) - cpu0
    wall = time.monotonic() - t0
    info = (f"{name}: {report} | good client: {len(lat)} calls, p99 {p99(lat) * 1e3:.2f} ms "
            f"(baseline {p99(base) * 1e3:.2f} ms) | RSS {rss0 >> 20} MiB, peak +{growth >> 20} MiB | "
            f"agent CPU {cpu:.2f} s in {wall:.1f} s")
    print(info)
    if p99(lat) > max(2 * p99(base), LAT_FLOOR_S):
        assert not last, info
        raise LatencyMiss(info)
    assert growth < (IDLE_RSS_GROWTH if name == "idle_conns" else RSS_GROWTH), info
    # The agent still answers on a fresh connection too.
    with tls_channel(agent) as ch:
        assert pb[1].TestServiceStub(ch).Echo(pb[0].EchoRequest(message="after"), timeout=10).message == "after"
    return report


def test_rapid_reset_costs_the_connection(flood_agent, client, pb):
    r = run_attack(flood_agent, client, pb, "rapid_reset", 3)
    # The reset rate limit (1000 burst, 33/s) ends each connection, long
    # before the attacker's own cap of 200,000 streams; nghttp2 says
    # GOAWAY INTERNAL_ERROR (the attacker may see EPIPE before reading it).
    assert r["conns"] >= 1 and r["closed"] == r["conns"], r
    assert set(r["goaway_codes"]) <= {"2"}, r   # INTERNAL_ERROR
    # The attacker counts what it wrote, mostly kernel-buffered bytes the
    # server never reads (~1,300 per connection here, ~6,000 under ASan).
    assert r["streams"] < 20000 * r["conns"], r


def test_continuation_flood_costs_the_connection(flood_agent, client, pb):
    r = run_attack(flood_agent, client, pb, "continuation", 3)
    # Thrown out after a handful of CONTINUATIONs (max_continuations 8):
    # what the attacker counts is mostly what the kernel buffered before
    # the server's close reached it (its cap is 100,000 per connection).
    assert r["closed"] == r["conns"], r
    assert set(r["goaway_codes"]) <= {str(PROTOCOL_ERROR)}, r
    assert r["continuations"] < 5000 * r["conns"], r


def test_hpack_bomb_resets_the_stream(flood_agent, client, pb):
    before = log_count(flood_agent, "rpc.header_list_too_large")
    r = run_attack(flood_agent, client, pb, "hpack_bomb", 3)
    assert r["bombs"] > 0, r
    assert log_count(flood_agent, "rpc.header_list_too_large") - before >= r["bombs"], r
    # Every bomb stream is reset (header list over 16 KiB): the decoded
    # megabytes are never stored.
    assert r["bombs_reset"] == r["bombs"] or r["closed"], r


def test_ping_flood_is_limited(flood_agent, client, pb):
    r = run_attack(flood_agent, client, pb, "ping_flood", 3)
    # An unread ACK queue past 1000 ends the connection; before that the
    # server stops reading (TCP backpressure): either way it is bounded.
    assert r["goaways"] + r["closed"] + r["blocked"] >= r["conns"], r


def test_settings_flood_is_limited(flood_agent, client, pb):
    r = run_attack(flood_agent, client, pb, "settings_flood", 3)
    assert r["goaways"] + r["closed"] + r["blocked"] >= r["conns"], r


def test_empty_data_flood_costs_the_connection(flood_agent, client, pb):
    before = log_count(flood_agent, "kind=empty_data")
    r = run_attack(flood_agent, client, pb, "empty_data", 3)
    assert log_count(flood_agent, "kind=empty_data") - before == r["conns"], r
    # The 1001st empty frame ends the connection (GOAWAY ENHANCE_YOUR_CALM;
    # the attacker, whose unread bytes make the close a TCP reset, may
    # never read the GOAWAY). Its count is what the kernel buffered.
    assert r["closed"] == r["conns"], r
    assert set(r["goaway_codes"]) <= {str(ENHANCE_YOUR_CALM)}, r
    assert r["empty_frames"] < 1000000 * r["conns"], r


def test_zero_window_stall_keeps_memory_bounded(flood_agent, client, pb):
    # 100 server streams of 64 KiB messages to a client whose window is 0
    # and who never reads: handlers block at the per-stream high water.
    r = run_attack(flood_agent, client, pb, "zero_window", 3)
    assert r["streams"] == MAX_STREAMS and not r["closed"], r


def test_window_update_storm_then_overflow(flood_agent, client, pb):
    r = run_attack(flood_agent, client, pb, "window_update_storm", 3)
    assert r["window_updates"] > 0
    assert r["goaways"] == r["conns"], r
    assert set(r["goaway_codes"]) == {str(FLOW_CONTROL_ERROR)}, r


def test_streams_past_max_concurrent_are_refused(flood_agent, client, pb):
    r = run_attack(flood_agent, client, pb, "streams_past_limit", 2)
    assert r["refused"] >= 50 or r["goaways"] >= 1, r


def test_slowloris_tls_handshake_is_cut(flood_agent, client, pb):
    r = run_attack(flood_agent, client, pb, "slowloris", 3, port=flood_agent.tls_port)
    assert r["closed"] == r["conns"], r
    # --handshake-timeout-ms 1000; generous upper slack for a loaded box.
    assert 0.8 <= r["min_close_s"] and r["max_close_s"] <= 4.0, r


def test_idle_connections(flood_agent, client, pb):
    r = run_attack(flood_agent, client, pb, "idle_conns", 4)
    assert r["opened"] == IDLE_CONNS, r
    # Idle (no stream) for far less than --idle-timeout-ms: all still open.
    assert r["alive_at_end"] == IDLE_CONNS, r


def test_idle_streams_on_few_connections_do_not_starve_other_calls(flood_agent, client, pb):
    """Every open client-streaming/bidi stream holds a worker thread while
    its handler waits for input; max-workers (256) is global while the
    stream limit (100) is per connection. Three connections, 300 HEADERS
    frames, no data: every other call on the agent waits for a worker
    until its deadline — unless streaming handlers run on a pool of their own
    (rpc/server.c: workq_streams), which they now do."""
    conns = []
    try:
        for _ in range(3):
            c = Raw(flood_agent.h2c_port)
            c.send(b"".join(c.headers(c.next_sid(), path=BIDI) for _ in range(MAX_STREAMS)))
            conns.append(c)
        time.sleep(0.5)
        # Starved, it would wait for its whole deadline; TSan's slowness
        # (5-15x on a loaded machine) needs more than 2 s to answer at all.
        assert client.Echo(pb[0].EchoRequest(message="x"), timeout=10 if TSAN else 2).message == "x"
    finally:
        for c in conns:
            c.close()
        time.sleep(0.5)     # the agent cancels those handlers on close
