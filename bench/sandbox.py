#!/usr/bin/python3
"""sandbox.py: the exec and lifecycle benchmarks (bench/run.sh runs them via
bench/suite.py; see docs/BENCHMARKS.md).

It starts the real daemon (hostagent) with the bundled simulator (fcsim) as
its VMM, booting the real ext4 image (scripts/build-rootfs.sh) with the real
guest agent, on a state directory either on the host filesystem (rootfs
clones are copies) or on a reflink XFS loop image (clones are reflinks), and
drives it over mTLS with python3-grpcio. Every figure has its reference in
the same run, measured right after it:

  exec      round trip of `true` (Exec)        vs fork+exec of `true` here
            time to first byte (ExecStream)    vs the first byte of a host pipe
            output MB/s: guest -> vsock -> agent -> TLS -> client
                                               vs `head -c N /dev/zero` read
                                                  from a host pipe by this process
  lifecycle create -> running (client wall time) at concurrency 1, 8, 32, split
            by phase from the agent's sbx.created line (net, rootfs, vmm_start,
            vmm_configure, vmm_boot, guest_ready); the agent's share is the
            wall time minus vmm_start, vmm_boot and guest_ready (the VMM's
            bring-up and the guest's boot); destroy latency; sustained creates
            per second; pause and resume latency.

Output: markdown on stdout and --json FILE. Needs root (namespaces, loop
devices, nftables) and a build dir holding hostagent, tools/fcsim/fcsim and
guest/hostagent-guest; the guest agent is static, so for a sanitizer build
point --guest-build (or HA_GUEST_BUILD_DIR, as scripts/test.sh does) at a
plain build.
"""
import argparse
import concurrent.futures
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent as ha  # noqa: E402

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# The phases of a create as reported here. The sbx.created line times the
# backend hooks (net, rootfs, vmm_start, vmm_configure, vmm_boot,
# guest_ready); the real backend spawns, configures and starts the VMM all in
# its vmm_boot hook, so that part is split further by the vm.booted line:
# spawn (fork+exec), socket (until the VMM's API socket answers), configure
# (the API PUTs), start (InstanceStart). "other" is the rest of the
# manager's create (total_us): persistence, events, VM files, locks;
# "rpc" the rest of the client's wall time: gRPC, TLS, admission, queueing
# for a worker, the Python client itself.
PHASES = ("net", "rootfs", "spawn", "socket", "configure", "start", "guest_ready", "other", "rpc")
# The VMM's and the guest's own time; the rest is the agent's share.
VMM_PHASES = ("socket", "start", "guest_ready")


def log(t0, msg):
    print("sandbox: [%6.1fs] %s" % (time.monotonic() - t0, msg), file=sys.stderr, flush=True)


def pct(vals, p):
    """Nearest-rank percentile of a non-empty list."""
    v = sorted(vals)
    return v[min(len(v) - 1, max(0, (len(v) * p + 99) // 100 - 1))]


def dist(vals):
    """p50/p99/min/max/n of samples (ms or whatever unit they are in)."""
    if not vals:
        return None
    return {"p50": pct(vals, 50), "p99": pct(vals, 99), "min": min(vals), "max": max(vals), "n": len(vals)}


def stubs(work):
    d = os.path.join(work, "stubs")
    os.makedirs(d)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(TOP, "proto"),
                    "-I/usr/include", "--python_out=" + d, "--grpc_python_out=" + d,
                    "hostagent/v1/hostagent.proto", "google/rpc/status.proto"], check=True)
    sys.path.insert(0, d)
    from hostagent.v1 import hostagent_pb2, hostagent_pb2_grpc
    return hostagent_pb2, hostagent_pb2_grpc


class Fs:
    """Where state and images live: 'host' (a directory on the host fs) or
    'xfs' (a sparse loop image formatted with mkfs.xfs -m reflink=1)."""

    def __init__(self, kind, work):
        self.kind, self.dir, self.loop_file = kind, os.path.join(work, "fs-" + kind), None
        os.makedirs(self.dir)
        if kind == "xfs":
            if shutil.which("mkfs.xfs") is None:
                raise RuntimeError("--fs xfs needs mkfs.xfs (Debian package xfsprogs)")
            self.loop_file = os.path.join(work, "xfs.img")
            with open(self.loop_file, "wb") as f:
                f.truncate(4 << 30)
            subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", self.loop_file], check=True)
            subprocess.run(["mount", "-o", "loop", self.loop_file, self.dir], check=True)
        elif kind != "host":
            raise ValueError("--fs: host or xfs, not %r" % kind)
        self.fstype = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", self.dir], capture_output=True,
                                     text=True).stdout.strip()

    def close(self):
        if self.loop_file:
            subprocess.run(["umount", self.dir], check=False)
            os.unlink(self.loop_file)


def free_ranges():
    """A (sandbox /16, veth /24) pair no route on this host uses yet: other
    agents (tests, other benches) share the host, and the agent refuses to
    start on an overlap."""
    used = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                          text=True).stdout
    used += subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
    for _ in range(200):
        k = random.randrange(100, 250)
        sbx, veth = "10.%d." % k, "172.%d.%d." % (16 + k % 16, k)
        if sbx not in used and veth not in used:
            return sbx + "0.0/16", veth + "0/24"
    raise RuntimeError("no free address range for the agent's slots")


class Agent:
    def __init__(self, build, work, certs, images, fs, pb, slots, pool):
        self.pb, self.work, self.pool = pb, work, pool
        os.makedirs(work)
        self.log_path = os.path.join(work, "agent.log")
        for attempt in range(3):
            if self.start(build, certs, images, fs, slots, pool):
                break
            if attempt == 2 or "overlaps" not in self.log():
                raise RuntimeError("agent did not start:\n" + self.log()[-3000:])
            # Another agent took the range between our look and our start.

    def start(self, build, certs, images, fs, slots, pool):
        self.prefix = "b" + "".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3))
        self.run_dir = "/run/ha-" + self.prefix
        sbx_range, veth_range = free_ranges()
        self.metrics_port = free_port()
        args = [os.path.join(build, "hostagent"), "--state-dir", os.path.join(fs.dir, "state"),
                "--run-dir", self.run_dir, "--images-dir", images, "--log-level", os.environ.get("HA_BENCH_LOG_LEVEL", "info"),
                "--listen", "127.0.0.1:0", "--tls-cert", os.path.join(certs, "server.pem"),
                "--tls-key", os.path.join(certs, "server.key"), "--client-ca", os.path.join(certs, "ca.pem"),
                "--metrics-listen", "127.0.0.1:%d" % self.metrics_port,
                "--firecracker-bin", os.path.join(build, "tools", "fcsim", "fcsim"),
                "--slots", str(slots), "--pool", str(pool), "--net-prefix", self.prefix,
                # A slow machine shows up in the figures, not as failures:
                # VMM deadlines far above the 5 s defaults.
                "--vmm-api-timeout-ms", "60000", "--vmm-boot-timeout-ms", "60000",
                "--overcommit", "64", "--net-sandbox-range", sbx_range, "--net-veth-range", veth_range]
        with open(self.log_path, "w") as logf:
            self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        self.port = ha.wait_ready_port(self.proc, self.log, 60)
        if self.port is None:
            self.stop()
            return False
        self.connect(certs)
        return True

    def connect(self, certs):
        import grpc
        creds = grpc.ssl_channel_credentials(
            root_certificates=read(os.path.join(certs, "ca.pem")),
            private_key=read(os.path.join(certs, "admin.key")),
            certificate_chain=read(os.path.join(certs, "admin.pem")))
        self.channel = grpc.secure_channel("localhost:%d" % self.port, creds,
                                           options=[("grpc.max_receive_message_length", 64 << 20)])
        self.stub = self.pb[1].HostAgentServiceStub(self.channel)
        self.wait_serving()

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_serving(self, timeout=120):
        ha.wait_serving(self.stub, self.pb[0], timeout)

    def pool_ready(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=10) as r:
            text = r.read().decode()
        m = re.search(r'^hostagent_net_pool_slots\{state="ready"\} (\S+)', text, re.M)
        return int(float(m.group(1))) if m else 0

    def wait_pool(self, want, timeout=120):
        """A warm pool: |want| slots pre-built (the pool refills in the
        background after creates took slots)."""
        deadline = time.monotonic() + timeout
        while self.pool_ready() < want:
            if time.monotonic() > deadline:
                raise RuntimeError("slot pool not refilled to %d within %ds" % (want, timeout))
            time.sleep(0.1)

    def cpu_ms(self):
        """utime+stime of the agent's threads so far (not its VMMs)."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")

    def created_lines(self):
        """sandbox id -> µs per phase, from its sbx.created and vm.booted
        lines (the last of each, as ids are not reused within a run)."""
        text = self.log()
        booted = {}
        for m in re.finditer(r"event=vm\.booted vm=(\S+) .*", text):
            f = dict(kv.split("=", 1) for kv in m.group(0).split() if "=" in kv)
            booted[m.group(1)] = f
        out = {}
        for m in re.finditer(r"event=sbx\.created sbx=(\S+) .*", text):
            f = dict(kv.split("=", 1) for kv in m.group(0).split() if "=" in kv)
            b = booted.get(m.group(1))
            if "total_us" not in f or not b:
                continue
            ph = {"net": int(f["net_us"]), "rootfs": int(f["rootfs_us"]), "spawn": int(b["spawn_us"]),
                  "socket": int(b["socket_us"]), "configure": int(b["config_us"]), "start": int(b["start_us"]),
                  "guest_ready": int(f["guest_ready_us"]), "total": int(f["total_us"])}
            for k in ("vmm_start", "vmm_configure", "vmm_boot"):
                ph["hook_" + k] = int(f[k + "_us"])
            out[m.group(1)] = ph
        return out

    def destroy_all(self):
        """Leaves nothing behind, even after a failed row (the agent keeps
        VMMs running across its own restarts, so stopping it is not enough)."""
        P = self.pb[0]
        try:
            for x in self.stub.ListSandboxes(P.ListSandboxesRequest(), timeout=60).sandboxes:
                self.stub.DestroySandbox(P.DestroySandboxRequest(sandbox_id=x.sandbox_id), timeout=120)
        except Exception as e:  # noqa: BLE001 - best effort, the error that got us here matters more
            print("sandbox: cleanup: %s" % e, file=sys.stderr)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- exec ----------------------------------------------------------------

def timed(fn, until=None, count=None):
    """Calls fn() repeatedly (for |until| seconds or |count| times);
    -> latencies in ms."""
    lat = []
    end = time.monotonic() + until if until else None
    while (count is not None and len(lat) < count) or (end is not None and time.monotonic() < end):
        t = time.perf_counter()
        fn()
        lat.append((time.perf_counter() - t) * 1000)
    return lat


def exec_round(ag, sid, secs, count, size):
    """One iteration of every exec row, each followed by its reference."""
    P = ag.pb[0]
    res = {}

    import grpc
    res["errors"] = []

    def exec_true():
        # A failed call is counted and shown, not fatal: thousands of calls
        # per run find rare errors, which the document should show.
        try:
            r = ag.stub.Exec(P.ExecRequest(sandbox_id=sid, command=["true"]), timeout=60)
            assert r.exit_code == 0, r
        except grpc.RpcError as e:
            res["errors"].append("%s: %s" % (e.code().name, e.details()))

    res["true"] = timed(exec_true, secs, count)
    res["true_ref"] = timed(lambda: subprocess.run(["true"], check=True), secs, count)

    def first_byte():
        t = time.perf_counter()
        it = ag.stub.ExecStream(P.ExecRequest(sandbox_id=sid, command=["echo", "x"]), timeout=60)
        first = None
        for ev in it:
            if first is None and ev.HasField("stdout"):
                first = (time.perf_counter() - t) * 1000
        assert first is not None
        return first

    def first_byte_ref():
        t = time.perf_counter()
        p = subprocess.Popen(["echo", "x"], stdout=subprocess.PIPE)
        os.read(p.stdout.fileno(), 1)
        first = (time.perf_counter() - t) * 1000
        p.stdout.read()
        p.wait()
        return first

    n = count if count else max(5, int(secs * 20))
    res["ttfb"] = [first_byte() for _ in range(n)]
    res["ttfb_ref"] = [first_byte_ref() for _ in range(n)]

    t = time.perf_counter()
    got = 0
    for ev in ag.stub.ExecStream(P.ExecRequest(sandbox_id=sid, command=["head", "-c", str(size), "/dev/zero"]),
                                 timeout=600):
        if ev.HasField("stdout"):
            got += len(ev.stdout.data)
        elif ev.HasField("exited"):
            assert ev.exited.exit_code == 0, ev
    dt = time.perf_counter() - t
    assert got == size, (got, size)
    res["mbps"] = size / dt / 1e6

    t = time.perf_counter()
    p = subprocess.Popen(["head", "-c", str(size), "/dev/zero"], stdout=subprocess.PIPE, bufsize=0)
    got = 0
    while True:
        b = os.read(p.stdout.fileno(), 1 << 16)
        if not b:
            break
        got += len(b)
    p.wait()
    dt = time.perf_counter() - t
    assert got == size
    res["mbps_ref"] = size / dt / 1e6
    return res


def bench_exec(ag, a, t0):
    P = ag.pb[0]
    ag.stub.CreateSandbox(P.CreateSandboxRequest(sandbox_id="bx", image="base", timeout_seconds=3600), timeout=120)
    runs = []
    try:
        for i in range(a.runs):
            r = exec_round(ag, "bx", None if a.smoke else a.duration, 20 if a.smoke else None,
                           (1 << 20) if a.smoke else a.exec_bytes)
            log(t0, "exec run %d/%d: true p50 %.2f ms (host %.2f), ttfb p50 %.2f ms (host %.2f), "
                "%.0f MB/s (host pipe %.0f)" % (
                    i + 1, a.runs, statistics.median(r["true"]), statistics.median(r["true_ref"]),
                    statistics.median(r["ttfb"]), statistics.median(r["ttfb_ref"]), r["mbps"], r["mbps_ref"]))
            runs.append(r)
    finally:
        ag.stub.DestroySandbox(P.DestroySandboxRequest(sandbox_id="bx"), timeout=120)
    out = {"exec_bytes": (1 << 20) if a.smoke else a.exec_bytes, "runs": len(runs),
           "errors": [e for r in runs for e in r["errors"]]}
    for key in ("true", "true_ref", "ttfb", "ttfb_ref"):
        per = [dist(r[key]) for r in runs]
        out[key] = {"p50": statistics.median(d["p50"] for d in per), "p50_min": min(d["p50"] for d in per),
                    "p50_max": max(d["p50"] for d in per), "p99": statistics.median(d["p99"] for d in per),
                    "p99_min": min(d["p99"] for d in per), "p99_max": max(d["p99"] for d in per),
                    "n": sum(d["n"] for d in per)}
    for key in ("mbps", "mbps_ref"):
        v = [r[key] for r in runs]
        out[key] = {"median": statistics.median(v), "min": min(v), "max": max(v)}
    return out


# ---- lifecycle ------------------------------------------------------------

def create_batch(ag, ids, conc):
    """Creates |ids| with |conc| calls in flight; -> {id: wall ms}."""
    P = ag.pb[0]

    def one(sid):
        t = time.perf_counter()
        sb = ag.stub.CreateSandbox(P.CreateSandboxRequest(sandbox_id=sid, image="base", timeout_seconds=3600),
                                   timeout=300)
        assert sb.state == P.SANDBOX_STATE_RUNNING, sb
        return sid, (time.perf_counter() - t) * 1000

    with concurrent.futures.ThreadPoolExecutor(conc) as ex:
        return dict(ex.map(one, ids))


def destroy_batch(ag, ids, conc):
    P = ag.pb[0]

    def one(sid):
        t = time.perf_counter()
        ag.stub.DestroySandbox(P.DestroySandboxRequest(sandbox_id=sid), timeout=300)
        return (time.perf_counter() - t) * 1000

    with concurrent.futures.ThreadPoolExecutor(conc) as ex:
        return list(ex.map(one, ids))


def bench_lifecycle(ag, a, t0, fs):
    P = ag.pb[0]
    seq = [0]

    def ids(n):
        seq[0] += n
        return ["c%d" % i for i in range(seq[0] - n, seq[0])]

    # Warm-up, not counted: the first create pays for cold caches (image
    # pages, the VMM binary, the agent's lazily built state).
    ag.wait_pool(1)
    destroy_batch(ag, list(create_batch(ag, ["warm"], 1)), 1)
    levels = (1, 2) if a.smoke else tuple(a.concurrency)
    per_level = {c: {"wall": [], "share": [], "phases": {p: [] for p in PHASES}, "destroy": [], "cpu": [],
                     "samples": []} for c in levels}
    for it in range(a.runs):
        for c in levels:
            # At concurrency 1 several creates one after another, so that
            # every level has some samples per run.
            rounds = max(1, (2 if a.smoke else 8) // c)
            for _ in range(rounds):
                ag.wait_pool(min(c, ag.pool))
                time.sleep(float(os.environ.get("HA_BENCH_SETTLE", "0")))
                batch = ids(c)
                cpu0 = ag.cpu_ms()
                wall = create_batch(ag, batch, c)
                # The agent's CPU per create: steadier than wall time on a
                # shared machine (pool refills run in between, not here).
                per_level[c]["cpu"].append((ag.cpu_ms() - cpu0) / c)
                lines = ag.created_lines()
                for sid, ms in wall.items():
                    ph = lines[sid]
                    ph["other"] = ph["total"] - sum(ph[p] for p in PHASES[:-2])
                    ph["rpc"] = ms * 1000 - ph["total"]
                    d = per_level[c]
                    d["wall"].append(ms)
                    for p in PHASES:
                        d["phases"][p].append(ph[p] / 1000)
                    d["share"].append(ms - sum(ph[p] for p in VMM_PHASES) / 1000)
                    # Each create's own split, so the slowest can be told apart.
                    d["samples"].append(dict({p: ph[p] / 1000 for p in PHASES}, wall=ms, share=d["share"][-1]))
                per_level[c]["destroy"] += destroy_batch(ag, batch, c)
            w = per_level[c]["wall"]
            log(t0, "%s run %d/%d create c=%d: wall p50 %.1f ms, agent share p50 %.1f ms (%d samples)" % (
                fs.kind, it + 1, a.runs, c, statistics.median(w), statistics.median(per_level[c]["share"]), len(w)))
    out = {"levels": {}}
    for c, d in per_level.items():
        out["levels"][str(c)] = {"wall": dist(d["wall"]), "share": dist(d["share"]), "destroy": dist(d["destroy"]),
                                 "cpu_ms": statistics.mean(d["cpu"]),
                                 "phases": {p: dist(v) for p, v in d["phases"].items()},
                                 "samples": d["samples"]}

    # Sustained creates per second: --creates sandboxes, 8 in flight, from
    # a warm pool (which drains: slots built on demand count too).
    n = 4 if a.smoke else a.creates
    rates = []
    for it in range(a.runs):
        ag.wait_pool(ag.pool)
        batch = ids(n)
        t = time.perf_counter()
        create_batch(ag, batch, min(8, n))
        dt = time.perf_counter() - t
        rates.append(n / dt)
        destroy_batch(ag, batch, 8)
        log(t0, "%s run %d/%d: %d creates at concurrency 8 in %.2f s: %.1f/s" % (fs.kind, it + 1, a.runs, n, dt,
                                                                               n / dt))
    out["creates_per_s"] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "n": n}

    # Pause and resume of one running sandbox.
    ag.stub.CreateSandbox(P.CreateSandboxRequest(sandbox_id="pr", image="base", timeout_seconds=3600), timeout=300)
    pause, resume = [], []
    for _ in range(a.runs * (3 if a.smoke else 10)):
        t = time.perf_counter()
        sb = ag.stub.PauseSandbox(P.PauseSandboxRequest(sandbox_id="pr"), timeout=120)
        pause.append((time.perf_counter() - t) * 1000)
        assert sb.state == P.SANDBOX_STATE_PAUSED, sb
        t = time.perf_counter()
        sb = ag.stub.ResumeSandbox(P.ResumeSandboxRequest(sandbox_id="pr"), timeout=120)
        resume.append((time.perf_counter() - t) * 1000)
        assert sb.state == P.SANDBOX_STATE_RUNNING, sb
    r = ag.stub.Exec(P.ExecRequest(sandbox_id="pr", command=["true"]), timeout=60)
    assert r.exit_code == 0
    ag.stub.DestroySandbox(P.DestroySandboxRequest(sandbox_id="pr"), timeout=120)
    out["pause"], out["resume"] = dist(pause), dist(resume)
    return out


def machine():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def render(res):
    """Markdown sections, keyed by the marker names of BENCHMARKS.md.in."""
    out = {}
    e = res.get("exec")
    if e:
        rows = ["| Figure | hostagent (guest via fcsim) | reference (this host) | ratio |", "|---|---|---|---|"]

        def lat(name, key, ref_key, what):
            a, b = e[key], e[ref_key]
            rows.append("| %s p50 ms (min–max of run medians) | %.2f (%.2f–%.2f) | %.2f (%.2f–%.2f) | %.1f× |" % (
                name, a["p50"], a["p50_min"], a["p50_max"], b["p50"], b["p50_min"], b["p50_max"], a["p50"] / b["p50"]))
            rows.append("| %s p99 ms (min–max) | %.2f (%.2f–%.2f) | %.2f (%.2f–%.2f) | %.1f× |" % (
                name, a["p99"], a["p99_min"], a["p99_max"], b["p99"], b["p99_min"], b["p99_max"], a["p99"] / b["p99"]))
            del what

        lat("Exec `true` round trip", "true", "true_ref", "fork+exec")
        lat("Time to first byte (`echo x`, ExecStream)", "ttfb", "ttfb_ref", "pipe")
        a, b = e["mbps"], e["mbps_ref"]
        rows.append("| Output MB/s, `head -c %d /dev/zero` (min–max) | %.0f (%.0f–%.0f) | %.0f (%.0f–%.0f) pipe | %.2f× |" % (
            e["exec_bytes"], a["median"], a["min"], a["max"], b["median"], b["min"], b["max"],
            a["median"] / b["median"]))
        errs = e.get("errors") or []
        rows.append("")
        rows.append("Failed Exec calls: %d of %d%s" % (len(errs), e["true"]["n"], (" (" + "; ".join(
            sorted(set(errs))[:3]) + ")") if errs else ""))
        out["exec"] = "\n".join(rows)
    lc = res.get("lifecycle") or {}
    if lc:
        rows = ["| fs | concurrency | create→running wall p50 / p99 ms | agent share p50 / p99 ms | "
                + " | ".join("%s p50" % p for p in PHASES) + " | agent CPU ms/create | destroy p50 / p99 ms | samples |",
                "|---|---|---|---|" + "---|" * len(PHASES) + "---|---|---|"]
        for fs, r in lc.items():
            for c, d in r["levels"].items():
                rows.append("| %s | %s | %.1f / %.1f | %.1f / %.1f | %s | %.1f | %.1f / %.1f | %d |" % (
                    fs, c, d["wall"]["p50"], d["wall"]["p99"], d["share"]["p50"], d["share"]["p99"],
                    " | ".join("%.1f" % d["phases"][p]["p50"] for p in PHASES), d["cpu_ms"], d["destroy"]["p50"],
                    d["destroy"]["p99"], d["wall"]["n"]))
        out["lifecycle"] = "\n".join(rows)
        rows = ["| fs | sustained creates/s median (min–max) | pause p50 / p99 ms | resume p50 / p99 ms |",
                "|---|---|---|---|"]
        for fs, r in lc.items():
            cps = r["creates_per_s"]
            rows.append("| %s | %.1f (%.1f–%.1f), %d creates × %d runs | %.1f / %.1f | %.1f / %.1f |" % (
                fs, cps["median"], cps["min"], cps["max"], cps["n"], res["runs"], r["pause"]["p50"],
                r["pause"]["p99"], r["resume"]["p50"], r["resume"]["p99"]))
        out["lifecycle_rates"] = "\n".join(rows)
        rows = []
        for fs, r in lc.items():
            d = r["levels"].get("1")
            if d:
                ok50, ok99 = d["share"]["p50"] < 5, d["share"]["p99"] < 20
                rows.append("- %s, concurrency 1: agent share p50 %.1f ms (target < 5: %s), p99 %.1f ms "
                            "(target < 20: %s)" % (fs, d["share"]["p50"], "met" if ok50 else "missed",
                                                   d["share"]["p99"], "met" if ok99 else "missed"))
        out["lifecycle_target"] = "\n".join(rows)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("HA_BUILD_DIR", os.path.join(TOP, "build")))
    ap.add_argument("--guest-build", default=os.environ.get("HA_GUEST_BUILD_DIR"),
                    help="build dir of the static guest agent (default: --build)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5, help="seconds per latency row (exec)")
    ap.add_argument("--exec-bytes", type=int, default=64 << 20, help="bytes of the output throughput row")
    ap.add_argument("--creates", type=int, default=32, help="creates per sustained-rate run")
    ap.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    ap.add_argument("--fs", default="host", help="comma list: host (copy clones), xfs (reflink loop image)")
    ap.add_argument("--only", default="exec,lifecycle", help="comma list: exec, lifecycle")
    ap.add_argument("--smoke", action="store_true", help="a tiny fixed-count iteration of every row")
    ap.add_argument("--json", help="write the results as JSON to this file")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    if a.smoke:
        a.runs = 1
    if os.geteuid() != 0:
        sys.exit("sandbox: needs root (network namespaces, loop devices, nftables)")
    a.guest_build = os.path.abspath(a.guest_build or a.build)
    for d, exe in ((a.build, "hostagent"), (a.build, "tools/fcsim/fcsim"), (a.guest_build, "guest/hostagent-guest")):
        if not os.path.exists(os.path.join(d, exe)):
            sys.exit("sandbox: %s not built in %s" % (exe, d))
    parts = a.only.split(",")
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="ha-bench-sbx-")
    res = {"runs": a.runs, "loadavg_start": machine(), "lifecycle": {}}
    try:
        certs = os.path.join(work, "certs")
        os.makedirs(certs)
        subprocess.run([os.path.join(TOP, "scripts", "gen-certs.sh"), certs], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        images = os.path.join(work, "images")
        subprocess.run([os.path.join(TOP, "scripts", "build-rootfs.sh"), images], check=True,
                       env=dict(os.environ, HA_BUILD_DIR=a.guest_build), stdout=subprocess.DEVNULL)
        pb = stubs(work)
        log(t0, "certs, image and stubs ready")
        fss = a.fs.split(",") if "lifecycle" in parts else ["host"]
        for i, kind in enumerate(fss):
            fs = Fs(kind, work)
            ag = None
            try:
                # Images on the same filesystem as the state: a reflink
                # needs both ends on one filesystem.
                img = os.path.join(fs.dir, "images")
                os.makedirs(img)
                shutil.copy(os.path.join(images, "base.ext4"), img)
                pool = 2 if a.smoke else max(a.concurrency)
                # The sustained-rate batch holds --creates sandboxes at once, and
                # the slots of the batch before are still being scrubbed.
                ag = Agent(a.build, os.path.join(work, "agent-" + kind), certs, img, fs, pb,
                           slots=pool + 8 + (0 if a.smoke else 2 * a.creates), pool=pool)
                log(t0, "agent up on %s (%s)" % (kind, fs.fstype))
                if "exec" in parts and i == 0:
                    res["exec"] = bench_exec(ag, a, t0)
                if "lifecycle" in parts:
                    res["lifecycle"][kind + " (" + fs.fstype + ")"] = bench_lifecycle(ag, a, t0, fs)
            except Exception as e:  # noqa: BLE001 - one filesystem failing must not lose the others
                import traceback
                traceback.print_exc()
                if ag:
                    print(ag.log()[-4000:], file=sys.stderr)
                res.setdefault("errors", []).append("%s: %s" % (kind, e))
            finally:
                if ag:
                    ag.destroy_all()
                    ag.stop()
                    # A sanitizer build's report fails the run (the work
                    # dir, logs included, is deleted at the end).
                    text = ag.log()
                    for word in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                                 "WARNING: ThreadSanitizer"):
                        if word in text:
                            i = text.index(word)
                            print(text[max(0, i - 2000):i + 6000], file=sys.stderr)
                            res.setdefault("errors", []).append("%s: agent log has %r" % (kind, word))
                fs.close()
    finally:
        if os.environ.get("HA_BENCH_KEEP"):
            print("sandbox: kept %s" % work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    res["loadavg_end"] = machine()
    res["md"] = render(res)
    for name, text in res["md"].items():
        print("<!-- %s -->\n%s\n" % (name, text))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    for e in res.get("errors", []):
        print("sandbox: FAILED on %s" % e, file=sys.stderr)
    return 1 if res.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
