#!/usr/bin/python3
"""bench.py: the benchmark driver behind bench/run.sh (see docs/BENCHMARKS.md).

It starts, on loopback, the real daemon (hostagent), the test daemon
(hostagent-testd, for the streaming rows: TestService/ServerStream) and the
reference gRPC C++ server (bench/ref_grpc_server, stock libgrpc++ serving
grpc.health.v1.Health/Check), then drives them with h2load, side by side in
the same run: every iteration runs each row once, and a hostagent row is
always followed by the reference row of the same shape, so load changes on
this shared machine hit both alike. It reports the median of the iterations
with min-max, p50/p99 latency from h2load's per-request log (h2load itself
only prints mean/sd), and checks each row's answer once with curl: h2load
only counts HTTP 200s, so grpc-status (trailer, or gRPC-Web trailer frame)
and the Connect body are verified separately.

Output: a markdown table on stdout, and --json FILE for machines (the smoke
test reads it). --smoke runs one tiny fixed-count iteration of every row.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
HEALTH = "/grpc.health.v1.Health/Check"
STREAM = "/hostagent.test.v1.TestService/ServerStream"
STREAM_MSG = 64 * 1024


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def grpc_frame(msg):
    return b"\0" + len(msg).to_bytes(4, "big") + msg


def stream_request(count, size):
    # hostagent.test.v1.StreamRequest{count=1, size=2}
    return b"\x08" + varint(count) + b"\x10" + varint(size)


# Request shapes: content-type and extra headers, request body, and the
# check of a sample answer (headers+trailers text, body bytes) -> error or None.
def check_grpc(hdrs, body):
    m = re.search(r"^grpc-status:\s*(\d+)", hdrs, re.M | re.I)
    if not m:
        return "no grpc-status trailer"
    return None if m.group(1) == "0" else "grpc-status " + m.group(1)


def check_grpc_web(hdrs, body):
    m = re.search(rb"grpc-status:\s*(\d+)", body)
    if not m:
        return "no grpc-status in the gRPC-Web trailer frame"
    return None if m.group(1) == b"0" else "grpc-status " + m.group(1).decode()


def check_connect_proto(hdrs, body):
    # HealthCheckResponse{status=SERVING(1)}
    return None if body == b"\x08\x01" else "unexpected body %r" % body[:40]


def check_connect_json(hdrs, body):
    try:
        ok = json.loads(body).get("status") == "SERVING"
    except ValueError:
        ok = False
    return None if ok else "unexpected body %r" % body[:80]


KINDS = {
    "grpc": (["content-type: application/grpc", "te: trailers"], grpc_frame(b""), check_grpc),
    # HealthCheckRequest{service=""} written out explicitly (field 1, length
    # 0): the same message as an empty body, but h2load cannot send an empty
    # file (-d mmaps it).
    "connect-proto": (["content-type: application/proto", "connect-protocol-version: 1"], b"\x0a\x00",
                      check_connect_proto),
    "connect-json": (["content-type: application/json", "connect-protocol-version: 1"], b"{}",
                     check_connect_json),
    "grpc-web": (["content-type: application/grpc-web+proto", "x-grpc-web: 1"], grpc_frame(b""),
                 check_grpc_web),
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, what, log_path, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path, errors="replace") as f:
                raise RuntimeError("%s exited with %s:\n%s" % (what, proc.returncode, f.read()[-3000:]))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s: port %d not listening after %ss" % (what, port, timeout))


class Server:
    """One server process on two kernel-chosen loopback ports (tls, h2c)."""

    def __init__(self, name, proc, tls_port, h2c_port, log_path):
        self.name, self.proc, self.log_path = name, proc, log_path
        self.ports = {"tls": tls_port, "h2c": h2c_port}

    def url(self, transport, path):
        scheme = "https" if transport == "tls" else "http"
        return "%s://127.0.0.1:%d%s" % (scheme, self.ports[transport], path)

    def cpu_secs(self):
        """utime+stime of every thread so far (/proc/PID/stat fields 14-15)."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_agent(name, exe, work, certs, workers, net_prefix):
    """hostagent/hostagent-testd at --log-level warn: the agent.ready line is
    info, so the ports are chosen here (free_port) instead of read back."""
    os.makedirs(work)
    log_path = os.path.join(work, "agent.log")
    for _attempt in range(3):
        tls, h2c = free_port(), free_port()
        args = [exe, "--state-dir", os.path.join(work, "state"), "--run-dir", os.path.join(work, "run"),
                "--images-dir", os.path.join(work, "images"), "--log-level", "warn",
                "--listen", "127.0.0.1:%d" % tls, "--tls-cert", os.path.join(certs, "server.pem"),
                "--tls-key", os.path.join(certs, "server.key"), "--h2c-listen", "127.0.0.1:%d" % h2c,
                "--workers", str(workers), "--pool", "0", "--slots", "1", "--net-prefix", net_prefix]
        with open(log_path, "w") as logf:
            proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_port(tls, proc, name, log_path)
            wait_port(h2c, proc, name, log_path)
            return Server(name, proc, tls, h2c, log_path)
        except RuntimeError:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if _attempt == 2:
                raise
    raise AssertionError("unreachable")


def start_ref(exe, work, certs):
    os.makedirs(work)
    log_path = os.path.join(work, "ref.log")
    with open(log_path, "w") as logf:
        proc = subprocess.Popen([exe, "--tls", "127.0.0.1:0", "--cert", os.path.join(certs, "server.pem"),
                                 "--key", os.path.join(certs, "server.key"), "--h2c", "127.0.0.1:0"],
                                stdout=subprocess.PIPE, stderr=logf, start_new_session=True, text=True)
    line = proc.stdout.readline()
    m = re.match(r"ready tls_port=(\d+) h2c_port=(\d+)", line)
    if not m:
        proc.kill()
        proc.wait()
        with open(log_path, errors="replace") as f:
            raise RuntimeError("ref_grpc_server did not start: %r\n%s" % (line, f.read()[-2000:]))
    return Server("reference", proc, int(m.group(1)), int(m.group(2)), log_path)


def parse_h2load(out, log_path):
    """-> dict(rps, ok, failed, data_bytes, secs, p50_ms, p99_ms)."""
    r = {}
    m = re.search(r"finished in ([\d.]+)(ms|s), ([\d.]+) req/s", out)
    if not m:
        raise RuntimeError("h2load output not understood:\n" + out[-2000:])
    r["secs"] = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
    r["rps"] = float(m.group(3))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored", out)
    r["ok"], r["failed"] = int(m.group(4)), int(m.group(5)) + int(m.group(6))
    m = re.search(r"status codes: (\d+) 2xx", out)
    r["http2xx"] = int(m.group(1))
    m = re.search(r"traffic: .*?, .*? headers .*?, [\d.]+\w* \((\d+)\) data", out)
    r["data_bytes"] = int(m.group(1)) if m else 0
    lat = []
    with open(log_path) as f:
        for line in f:
            cols = line.split("\t")
            if len(cols) >= 3 and cols[1] == "200":
                lat.append(int(cols[2]))
    lat.sort()
    if lat:
        r["p50_ms"] = lat[len(lat) // 2] / 1000.0
        r["p99_ms"] = lat[min(len(lat) - 1, (len(lat) * 99) // 100)] / 1000.0
    else:
        r["p50_ms"] = r["p99_ms"] = 0.0
    return r


def h2load(url, headers, body_path, clients, streams, work, duration=None, count=None, warmup=None):
    log_path = os.path.join(work, "h2load.log")
    # h2load appends to --log-file: each run starts from an empty one.
    if os.path.exists(log_path):
        os.unlink(log_path)
    args = ["h2load", "-t", "1", "-c", str(clients), "-m", str(streams), "-d", body_path,
            "--log-file", log_path]
    for h in headers:
        args += ["-H", h]
    if duration is not None:
        args += ["-D", "%g" % duration]
        if warmup:
            args += ["--warm-up-time", "%g" % warmup]
    else:
        args += ["-n", str(count)]
    p = subprocess.run(args + [url], capture_output=True, text=True, timeout=(duration or 30) + 60)
    if p.returncode != 0:
        raise RuntimeError("h2load failed (%d): %s\n%s" % (p.returncode, " ".join(args), p.stderr[-2000:]))
    return parse_h2load(p.stdout, log_path)


def curl_check(url, transport, headers, body_path, check, work):
    """One sample call; -> None when the answer is a success, else why not."""
    hdr_path, out_path = os.path.join(work, "curl.hdr"), os.path.join(work, "curl.out")
    args = ["curl", "-sS", "-k", "--max-time", "20", "-X", "POST", "--data-binary", "@" + body_path,
            "-D", hdr_path, "-o", out_path]
    args.append("--http2" if transport == "tls" else "--http2-prior-knowledge")
    for h in headers:
        args += ["-H", h]
    p = subprocess.run(args + [url], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        return "curl failed: " + p.stderr.strip()
    with open(hdr_path, errors="replace") as f:
        hdrs = f.read()
    with open(out_path, "rb") as f:
        body = f.read()
    if not re.match(r"HTTP/2 200", hdrs):
        return "HTTP status: " + hdrs.splitlines()[0] if hdrs else "no HTTP status"
    return check(hdrs, body)


def agent_version(exe):
    """The daemon's own --version line: its build rev, which is what was
    measured (the checkout's HEAD may have moved since the build)."""
    p = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    return p.stdout.strip().splitlines()[0] if p.stdout.strip() else "unknown"


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    h2v = subprocess.run(["h2load", "--version"], capture_output=True, text=True).stdout.strip()
    grpcv = subprocess.run(["pkg-config", "--modversion", "grpc++"], capture_output=True, text=True).stdout.strip()
    rev = subprocess.run(["git", "-C", TOP, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": model, "loadavg_start": load, "mem_mib": mem,
            "kernel": os.uname().release, "h2load": h2v, "grpcxx": grpcv or "n/a", "git": rev}


def json_codec_bench(build, iters, work):
    """The Sandbox JSON micro-benchmark of tests/unit/rpc/test_codec_json.c."""
    exe = os.path.join(build, "tests", "unit", "rpc", "unit_rpc_test_codec_json")
    if not os.path.exists(exe):
        return None
    env = dict(os.environ, HA_BENCH_ITERS=str(iters), HA_SOURCE_DIR=TOP, HA_BINARY_DIR=build)
    p = subprocess.run([exe, "--jobs", "1", "--filter", "codec_json/bench_sandbox_encode_decode"],
                       capture_output=True, text=True, env=env, timeout=300, cwd=work)
    m = re.search(r"Sandbox JSON \((\d+) bytes\): encode (\d+) ns, decode (\d+) ns", p.stderr + p.stdout)
    if not m:
        raise RuntimeError("JSON bench output not understood:\n" + (p.stderr + p.stdout)[-2000:])
    pb = re.search(r"Sandbox protobuf \((\d+) bytes\): pack (\d+) ns, unpack (\d+) ns", p.stderr + p.stdout)
    r = {"json_bytes": int(m.group(1)), "encode_ns": int(m.group(2)), "decode_ns": int(m.group(3))}
    if pb:
        r.update(pb_bytes=int(pb.group(1)), pack_ns=int(pb.group(2)), unpack_ns=int(pb.group(3)))
    return r


def build_rows(smoke):
    """Rows, in run order. Rows compared with each other run back to back
    (per concurrency and transport: hostagent gRPC, the reference, then
    Connect proto/JSON and gRPC-Web on the hostagent), so that a change in
    the machine's load between them is as small as it can be."""
    rows = []
    for c, m in ((1, 1), (4, 16), (16, 64)):
        for tr in ("tls", "h2c"):
            rows.append({"kind": "grpc", "server": "hostagent", "transport": tr, "c": c, "m": m})
            rows.append({"kind": "grpc", "server": "reference", "transport": tr, "c": c, "m": m})
            if (c, m) != (4, 16):
                for kind in ("connect-proto", "connect-json", "grpc-web"):
                    rows.append({"kind": kind, "server": "hostagent", "transport": tr, "c": c, "m": m})
    for c, m in ((1, 1), (4, 4)):
        for tr in ("tls", "h2c"):
            rows.append({"kind": "stream", "server": "testd", "transport": tr, "c": c, "m": m})
    return rows


def row_label(r):
    if r["kind"] == "stream":
        return "ServerStream 64 KiB"
    return {"grpc": "gRPC unary", "connect-proto": "Connect unary proto", "connect-json": "Connect unary JSON",
            "grpc-web": "gRPC-Web unary"}[r["kind"]]


def fmt(v, nd=0):
    return ("%%.%df" % nd) % v


def summarize(rows):
    """Medians, min-max and ratios; fills row['sum']."""
    index = {}
    for r in rows:
        runs = r["runs"]
        s = {}
        for key in ("rps", "p50_ms", "p99_ms", "mbps", "cpu_us"):
            vals = [x[key] for x in runs if key in x]
            if vals:
                s[key] = statistics.median(vals)
                s[key + "_min"], s[key + "_max"] = min(vals), max(vals)
        r["sum"] = s
        index[(r["kind"], r["server"], r["transport"], r["c"], r["m"])] = r
    for r in rows:
        s = r["sum"]
        if r["kind"] == "grpc" and r["server"] == "hostagent":
            ref = index.get(("grpc", "reference", r["transport"], r["c"], r["m"]))
            if ref and ref["sum"].get("rps"):
                s["vs_ref_rps"] = s["rps"] / ref["sum"]["rps"]
                s["vs_ref_p99"] = s["p99_ms"] / ref["sum"]["p99_ms"] if ref["sum"]["p99_ms"] else 0
                s["vs_ref_cpu"] = s["cpu_us"] / ref["sum"]["cpu_us"] if ref["sum"]["cpu_us"] else 0
        if r["kind"] in ("connect-proto", "connect-json", "grpc-web"):
            g = index.get(("grpc", "hostagent", r["transport"], r["c"], r["m"]))
            if g and g["sum"].get("rps"):
                s["vs_grpc_rps"] = s["rps"] / g["sum"]["rps"]


def table(rows):
    out = ["| Row | Server | TLS/h2c | -c/-m | req/s (stream: MB/s) median (min–max) | p50 ms | p99 ms (min–max) | server CPU µs/call | ratio | answer |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["sum"]
        if r["kind"] == "stream":
            thr = "%s MB/s (%s–%s)" % (fmt(s["mbps"], 1), fmt(s["mbps_min"], 1), fmt(s["mbps_max"], 1))
        else:
            thr = "%s (%s–%s)" % (fmt(s["rps"]), fmt(s["rps_min"]), fmt(s["rps_max"]))
        ratio = ""
        if "vs_ref_rps" in s:
            ratio = "%.2f× ref rps, p99 %.2f×, CPU/call %.2f×" % (s["vs_ref_rps"], s["vs_ref_p99"],
                                                                 s["vs_ref_cpu"])
        elif "vs_grpc_rps" in s:
            ratio = "%.2f× hostagent gRPC" % s["vs_grpc_rps"]
        out.append("| %s | %s | %s | -c%d -m%d | %s | %s | %s (%s–%s) | %s | %s | %s |" % (
            row_label(r), r["server"], r["transport"], r["c"], r["m"], thr, fmt(s["p50_ms"], 2),
            fmt(s["p99_ms"], 2), fmt(s["p99_ms_min"], 2), fmt(s["p99_ms_max"], 2), fmt(s["cpu_us"], 1), ratio,
            "ok" if not r.get("check_error") else "FAIL: " + r["check_error"]))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("HA_BUILD_DIR", os.path.join(TOP, "build")))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10, help="seconds per h2load run")
    ap.add_argument("--warmup", type=float, default=1, help="h2load warm-up seconds per run")
    ap.add_argument("--stream-count", type=int, default=256, help="64 KiB messages per ServerStream call")
    ap.add_argument("--smoke", action="store_true", help="one tiny fixed-count iteration of every row")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    ap.add_argument("--filter", default="", help="only rows whose kind/server contains this")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    if shutil.which("h2load") is None:
        sys.exit("bench: h2load not found (Debian package nghttp2-client)")
    exes = {"hostagent": os.path.join(a.build, "hostagent"),
            "testd": os.path.join(a.build, "tests", "testd", "hostagent-testd"),
            "reference": os.path.join(a.build, "bench", "ref_grpc_server")}
    rows = [r for r in build_rows(a.smoke) if a.filter in r["kind"] + "/" + r["server"]]
    for srv in sorted({r["server"] for r in rows}):
        if not os.path.exists(exes[srv]):
            if srv == "reference":
                print("bench: %s not built (needs g++ and libgrpc++-dev): reference rows skipped"
                      % exes[srv], file=sys.stderr)
                rows = [r for r in rows if r["server"] != "reference"]
            else:
                sys.exit("bench: %s not built (cmake --build %s --target %s)" % (
                    exes[srv], a.build, os.path.basename(exes[srv])))
    if a.smoke:
        a.runs, stream_count = 1, 16
    else:
        stream_count = a.stream_count
    t_start = time.monotonic()
    work = tempfile.mkdtemp(prefix="ha-bench-")
    servers = {}
    mach = machine()
    mach["agent"] = agent_version(exes["hostagent"]) if os.path.exists(exes["hostagent"]) else "n/a"
    ncpu = os.cpu_count() or 1
    try:
        certs = os.path.join(work, "certs")
        os.makedirs(certs)
        subprocess.run([os.path.join(TOP, "scripts", "gen-certs.sh"), certs], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        net_prefix = "hb%04x" % random.randrange(0x10000)
        for srv in sorted({r["server"] for r in rows}):
            if srv == "reference":
                servers[srv] = start_ref(exes[srv], os.path.join(work, srv), certs)
            else:
                servers[srv] = start_agent(srv, exes[srv], os.path.join(work, srv), certs, ncpu,
                                           net_prefix + srv[0])
        bodies = {}
        for kind, (_h, body, _c) in KINDS.items():
            bodies[kind] = os.path.join(work, kind + ".body")
            with open(bodies[kind], "wb") as f:
                f.write(body)
        bodies["stream"] = os.path.join(work, "stream.body")
        with open(bodies["stream"], "wb") as f:
            f.write(grpc_frame(stream_request(stream_count, STREAM_MSG)))

        def shape(r):
            if r["kind"] == "stream":
                return KINDS["grpc"][0], bodies["stream"], STREAM, check_grpc
            h, _b, check = KINDS[r["kind"]]
            return h, bodies[r["kind"]], HEALTH, check

        print("bench: [%5.1fs] servers up" % (time.monotonic() - t_start), file=sys.stderr)
        for r in rows:
            h, body, path, check = shape(r)
            r["runs"] = []
            r["check_error"] = curl_check(servers[r["server"]].url(r["transport"], path), r["transport"], h, body,
                                          check, work)
        print("bench: [%5.1fs] answers checked" % (time.monotonic() - t_start), file=sys.stderr)
        for it in range(a.runs):
            for r in rows:
                h, body, path, _check = shape(r)
                srv = servers[r["server"]]
                url = srv.url(r["transport"], path)
                cpu0 = srv.cpu_secs()
                if a.smoke:
                    n = 4 if r["kind"] == "stream" else 200
                    res = h2load(url, h, body, r["c"], r["m"], work, count=max(n, r["c"]))
                else:
                    res = h2load(url, h, body, r["c"], r["m"], work, duration=a.duration, warmup=a.warmup)
                # Server CPU per request: the figure that load from other
                # processes on a shared machine disturbs least. The warm-up's
                # requests are not counted by h2load: assume its rate held.
                cpu = srv.cpu_secs() - cpu0
                nreq = res["ok"] if a.smoke else res["rps"] * (a.duration + a.warmup)
                res["cpu_us"] = cpu * 1e6 / nreq if nreq else 0.0
                if r["kind"] == "stream":
                    res["mbps"] = res["data_bytes"] / res["secs"] / 1e6 if res["secs"] else 0.0
                r["runs"].append(res)
                print("bench: [%5.1fs] run %d/%d %-20s %-9s %s -c%d -m%d: %.0f req/s p99 %.2f ms cpu %.1f us/call%s" % (
                    time.monotonic() - t_start, it + 1, a.runs, row_label(r), r["server"], r["transport"], r["c"], r["m"], res["rps"],
                    res["p99_ms"], res["cpu_us"], " %.1f MB/s" % res["mbps"] if "mbps" in res else ""), file=sys.stderr)
        codec = []
        for _ in range(a.runs):
            c = json_codec_bench(a.build, 200 if a.smoke else 20000, work)
            if c:
                codec.append(c)
    finally:
        for s in servers.values():
            s.stop()
        logs = {}
        for name, s in servers.items():
            with open(s.log_path, errors="replace") as f:
                logs[name] = f.read()[-2000:]
        shutil.rmtree(work, ignore_errors=True)
    with open("/proc/loadavg") as f:
        mach["loadavg_end"] = " ".join(f.read().split()[:3])
    summarize(rows)
    mode = "smoke (1 × fixed count)" if a.smoke else "%d × %gs (+%gs warm-up) per row" % (a.runs, a.duration, a.warmup)
    print("Machine: %d CPUs, %s, %d MiB RAM, kernel %s; load average %s at start, %s at end" % (
        mach["nproc"], mach["cpu"], mach["mem_mib"], mach["kernel"], mach["loadavg_start"], mach["loadavg_end"]))
    print("Tools: %s, grpc++ %s, %s (checkout %s), --workers %d; %s, h2load -t1" % (
        mach["h2load"], mach["grpcxx"], mach["agent"], mach["git"], ncpu, mode))
    print()
    print(table(rows))
    cod = None
    if codec:
        cod = {k: statistics.median([c[k] for c in codec]) for k in codec[0]}
        cod.update({k + "_min": min(c[k] for c in codec) for k in ("encode_ns", "decode_ns")})
        cod.update({k + "_max": max(c[k] for c in codec) for k in ("encode_ns", "decode_ns")})
        print()
        print("Sandbox JSON (%d bytes): encode %.0f ns/message (%d–%d), decode %.0f ns/message (%d–%d)%s" % (
            cod["json_bytes"], cod["encode_ns"], cod["encode_ns_min"], cod["encode_ns_max"], cod["decode_ns"],
            cod["decode_ns_min"], cod["decode_ns_max"],
            "; protobuf (%d bytes): pack %.0f ns, unpack %.0f ns" % (cod["pb_bytes"], cod["pack_ns"],
                                                                   cod["unpack_ns"]) if "pack_ns" in cod else ""))
    else:
        print("\nSandbox JSON: unit_rpc_test_codec_json not built in %s (skipped)" % a.build)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": mach, "mode": mode, "rows": rows, "json_codec": cod}, f, indent=1)
    bad = [r for r in rows if r.get("check_error") or any(x["failed"] for x in r["runs"])]
    for r in bad:
        print("bench: %s %s %s: %s" % (row_label(r), r["server"], r["transport"],
                                        r.get("check_error") or "h2load saw failed requests"), file=sys.stderr)
        print(logs.get(r["server"], ""), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
