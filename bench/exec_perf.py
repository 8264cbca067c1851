#!/usr/bin/python3
"""bench/exec_perf.py: exec output throughput and time to first byte
through the whole path (issue 10): gRPC client -> TLS -> hostagent -> guest
agent over hybrid vsock (fcsim) -> command in the sandbox.

Starts its own hostagent with the bundled simulator (needs root: namespaces,
loop devices), creates one sandbox, then measures in the same run:
  raw pipe   `head -c N /dev/zero | cat >/dev/null` on the host (wall) and
             inside the sandbox (the guest's own duration of the command)
  exec       ExecStream of `head -c N /dev/zero`, every byte counted by the
             client; MB/s from the call to the exited event, plus the CPU
             seconds the agent, the VMM (fcsim + guest agent) and this
             client spent on it
  exec dd    the same with `dd if=/dev/zero bs=128k` as the producer, and
             its raw pipe in the sandbox: the sandbox's head is busybox,
             which alone runs at a fraction of the host's GNU head, so this
             row is the one bound by the exec path rather than the producer
  ttfb       ExecStream of `echo x`: time from the call to the first stdout
             byte, p50/p99 over --ttfb-runs calls (after 3 warm-up calls),
             next to two references taken in the same loop: a unary call
             that only crosses loop -> worker -> loop (SetSandboxTimeout of
             an unknown id, NOT_FOUND) and `echo x` forked on the host
             (first byte on its pipe). On a loaded machine every process
             wake-up on the way waits for a CPU; the references show how
             much of the figure is that.

  bench/exec_perf.py [--build DIR] [--agent EXE] [--mib N] [--runs R] [--ttfb-runs K] [--json FILE]

The build dir (default $HA_BUILD_DIR, else build/) must hold hostagent,
tools/fcsim/fcsim and guest/hostagent-guest (a plain, non-sanitizer build).
--agent runs another hostagent binary with that build's simulator and
guest (an A/B of the agent alone). $HA_GUEST_BUILD_DIR, when set, is where
the static guest agent comes from instead (scripts/test.sh sets it for
sanitizer builds, which cannot make it).
"""
import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent as ha  # noqa: E402

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def stubs(work):
    d = os.path.join(work, "stubs")
    os.makedirs(d)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(TOP, "proto"),
                    "-I/usr/include", "--python_out=" + d, "--grpc_python_out=" + d,
                    "hostagent/v1/hostagent.proto"], check=True)
    sys.path.insert(0, d)
    from hostagent.v1 import hostagent_pb2, hostagent_pb2_grpc
    return hostagent_pb2, hostagent_pb2_grpc


def cpu_secs(pid):
    """utime+stime of every thread of |pid| so far (/proc/PID/stat 14-15)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(root_pid):
    """CPU seconds of |root_pid| and every descendant alive now (the VMM
    simulator forks the guest agent, which forks the commands)."""
    kids = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        kids.setdefault(ppid, []).append(int(p))
    total, todo = 0.0, [root_pid]
    while todo:
        p = todo.pop()
        total += cpu_secs(p)
        todo += kids.get(p, [])
    return total


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Agent:
    def __init__(self, build, work, certs, images, exe=None):
        self.prefix = "x" + "".join(random.choice(string.ascii_lowercase) for _ in range(3))
        self.run_dir = "/run/ha-" + self.prefix
        k = sum(ord(ch) * 7 ** i for i, ch in enumerate(self.prefix)) % 100
        self.log_path = os.path.join(work, "agent.log")
        args = [exe or os.path.join(build, "hostagent"), "--state-dir", os.path.join(work, "state"),
                "--run-dir", self.run_dir, "--log-level", "info",
                "--listen", "127.0.0.1:0", "--tls-cert", os.path.join(certs, "server.pem"),
                "--tls-key", os.path.join(certs, "server.key"), "--client-ca", os.path.join(certs, "ca.pem"),
                "--images-dir", images, "--firecracker-bin", os.path.join(build, "tools", "fcsim", "fcsim"),
                "--slots", "2", "--pool", "0", "--net-prefix", self.prefix,
                "--net-sandbox-range", "10.%d.0.0/16" % (100 + k),
                "--net-veth-range", "172.%d.%d.0/24" % (16 + k % 16, k)]
        with open(self.log_path, "w") as logf:
            self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(self.log_path, errors="replace") as f:
                m = re.search(r'tls_port"?[=:]"?(\d+)', f.read())
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        with open(self.log_path, errors="replace") as f:
            raise RuntimeError("hostagent did not start:\n" + f.read()[-3000:])

    def vmm_pid(self):
        out = subprocess.run(["pgrep", "-f", "--", "--api-sock %s/" % self.run_dir],
                             capture_output=True, text=True).stdout.split()
        return int(out[0]) if out else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def channel(port, certs):
    import grpc
    rd = lambda n: open(os.path.join(certs, n), "rb").read()
    creds = grpc.ssl_channel_credentials(root_certificates=rd("ca.pem"), private_key=rd("admin.key"),
                                         certificate_chain=rd("admin.pem"))
    return grpc.secure_channel("localhost:%d" % port, creds,
                               options=[("grpc.max_receive_message_length", 8 << 20)])


def raw_host(nbytes):
    t0 = time.monotonic()
    subprocess.run(["sh", "-c", "head -c %d /dev/zero | cat >/dev/null" % nbytes], check=True)
    return time.monotonic() - t0


def producer(kind, nbytes):
    if kind == "head":
        return ["head", "-c", str(nbytes), "/dev/zero"]
    return ["dd", "if=/dev/zero", "bs=131072", "count=%d" % (nbytes // 131072)]


def raw_guest(stub, pb, sid, nbytes, kind="head"):
    cmd = " ".join(producer(kind, nbytes)) + " 2>/dev/null | cat >/dev/null"
    r = stub.Exec(pb.ExecRequest(sandbox_id=sid, command=["sh", "-c", cmd]), timeout=300)
    assert r.exit_code == 0, r
    return r.duration.seconds + r.duration.nanos / 1e9


def exec_stream(stub, pb, sid, nbytes, agent, vmm, kind="head"):
    a0, v0, c0 = cpu_secs(agent.proc.pid), tree_cpu(vmm), self_cpu()
    t0 = time.monotonic()
    got, chunks, code = 0, 0, None
    for ev in stub.ExecStream(pb.ExecRequest(sandbox_id=sid, command=producer(kind, nbytes)), timeout=600):
        if ev.HasField("stdout"):
            got += len(ev.stdout.data)
            chunks += 1
        elif ev.HasField("exited"):
            code = ev.exited.exit_code
    secs = time.monotonic() - t0
    assert code == 0 and got == nbytes, (code, got, nbytes)
    return {"secs": secs, "chunks": chunks, "agent_cpu": cpu_secs(agent.proc.pid) - a0,
            "vmm_cpu": tree_cpu(vmm) - v0, "client_cpu": self_cpu() - c0}


def ttfb(stub, pb, sid):
    t0 = time.monotonic()
    first = None
    for ev in stub.ExecStream(pb.ExecRequest(sandbox_id=sid, command=["echo", "x"]), timeout=60):
        if ev.HasField("stdout") and first is None:
            first = time.monotonic() - t0
    assert first is not None
    return first


def rpc_rtt(stub, pb):
    import grpc
    t0 = time.monotonic()
    try:
        stub.SetSandboxTimeout(pb.SetSandboxTimeoutRequest(sandbox_id="no-such-sandbox", timeout_seconds=1))
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e
    return time.monotonic() - t0


def host_echo():
    t0 = time.monotonic()
    p = subprocess.Popen(["echo", "x"], stdout=subprocess.PIPE)
    os.read(p.stdout.fileno(), 1)
    dt = time.monotonic() - t0
    p.stdout.close()
    p.wait()
    return dt


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("HA_BUILD_DIR", os.path.join(TOP, "build")))
    ap.add_argument("--agent", help="hostagent binary (default: the build dir's)")
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ttfb-runs", type=int, default=100)
    ap.add_argument("--json")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("exec_perf: needs root (the simulator uses namespaces and loop devices)")
    build = os.path.abspath(a.build)
    work = tempfile.mkdtemp(prefix="exec-perf-")
    agent = stub = None
    try:
        pb, pbg = stubs(work)
        certs = os.path.join(work, "certs")
        subprocess.run([os.path.join(TOP, "scripts", "gen-certs.sh"), certs], check=True, stdout=subprocess.DEVNULL)
        images = os.path.join(work, "images")
        subprocess.run([os.path.join(TOP, "scripts", "build-rootfs.sh"), images], check=True,
                       stdout=subprocess.DEVNULL,
                       env=dict(os.environ, HA_BUILD_DIR=os.environ.get("HA_GUEST_BUILD_DIR", build)))
        agent = Agent(build, work, certs, images, a.agent and os.path.abspath(a.agent))
        ch = channel(agent.port, certs)
        stub = pbg.HostAgentServiceStub(ch)
        ha.wait_serving(stub, pb, 90)
        sid = "perf"
        stub.CreateSandbox(pb.CreateSandboxRequest(sandbox_id=sid, image="base", timeout_seconds=3600))
        vmm = agent.vmm_pid()
        n = a.mib << 20
        res = {"mib": a.mib, "runs": []}
        for _ in range(a.runs):
            # Back to back, same sandbox: the raw pipe and the exec path see
            # the same load.
            host = raw_host(n)
            guest = raw_guest(stub, pb, sid, n)
            ex = exec_stream(stub, pb, sid, n, agent, vmm)
            guest_dd = raw_guest(stub, pb, sid, n, "dd")
            ex_dd = exec_stream(stub, pb, sid, n, agent, vmm, "dd")
            run = {"loadavg": os.getloadavg()[0], "raw_host_mbs": n / host / 1e6, "raw_guest_mbs": n / guest / 1e6,
                   "exec_mbs": n / ex["secs"] / 1e6, **ex,
                   "raw_guest_dd_mbs": n / guest_dd / 1e6, "exec_dd_mbs": n / ex_dd["secs"] / 1e6,
                   "dd": ex_dd}
            run["exec_pct_of_host_raw"] = 100 * run["exec_mbs"] / run["raw_host_mbs"]
            run["exec_pct_of_guest_raw"] = 100 * run["exec_mbs"] / run["raw_guest_mbs"]
            run["exec_dd_pct_of_host_raw"] = 100 * run["exec_dd_mbs"] / run["raw_host_mbs"]
            run["exec_dd_pct_of_guest_raw"] = 100 * run["exec_dd_mbs"] / run["raw_guest_dd_mbs"]
            res["runs"].append(run)
            print("load %4.1f | raw host %5.0f MB/s | head: raw guest %5.0f exec %5.0f MB/s (%4.1f%% host, %5.1f%% "
                  "guest) | dd: raw guest %5.0f exec %5.0f MB/s (%4.1f%% host, %5.1f%% guest)" % (
                      run["loadavg"], run["raw_host_mbs"], run["raw_guest_mbs"], run["exec_mbs"],
                      run["exec_pct_of_host_raw"], run["exec_pct_of_guest_raw"], run["raw_guest_dd_mbs"],
                      run["exec_dd_mbs"], run["exec_dd_pct_of_host_raw"], run["exec_dd_pct_of_guest_raw"]))
            for what, e in (("head", ex), ("dd", ex_dd)):
                print("      exec %-4s cpu s per %d MiB: agent %.2f vmm+guest agent %.2f client %.2f (%d chunks)" % (
                    what, a.mib, e["agent_cpu"], e["vmm_cpu"], e["client_cpu"], e["chunks"]), flush=True)
        for _ in range(3):
            ttfb(stub, pb, sid)
        ts, rtts, hosts = [], [], []
        for _ in range(a.ttfb_runs):
            ts.append(ttfb(stub, pb, sid) * 1000)
            rtts.append(rpc_rtt(stub, pb) * 1000)
            hosts.append(host_echo() * 1000)
        for key, xs, what in (("ttfb_ms", ts, "ttfb `echo x`"), ("rpc_rtt_ms", rtts, "unary NOT_FOUND call"),
                              ("host_echo_ms", hosts, "host `echo x` first byte")):
            res[key] = {"p50": pct(xs, 50), "p99": pct(xs, 99), "min": min(xs), "max": max(xs), "n": len(xs)}
            print("%-26s over %d: p50 %6.2f ms p99 %6.2f ms (min %.2f max %.2f)" % (
                what, len(xs), pct(xs, 50), pct(xs, 99), min(xs), max(xs)))
        med = lambda k: statistics.median(r[k] for r in res["runs"])
        print("median: exec head %.0f MB/s = %.1f%% of the host raw pipe, %.1f%% of the guest's; "
              "exec dd %.0f MB/s = %.1f%% / %.1f%%; agent cpu %.2f s (head) %.2f s (dd) per %d MiB" % (
                  med("exec_mbs"), med("exec_pct_of_host_raw"), med("exec_pct_of_guest_raw"), med("exec_dd_mbs"),
                  med("exec_dd_pct_of_host_raw"), med("exec_dd_pct_of_guest_raw"), med("agent_cpu"),
                  statistics.median(r["dd"]["agent_cpu"] for r in res["runs"]), a.mib))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(res, f, indent=1)
    finally:
        # A stopped agent leaves its VMs running (they survive restarts):
        # the sandbox goes first, also when a measurement failed.
        if stub:
            try:
                stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id="perf"), timeout=120)
            except Exception as e:  # noqa: BLE001 - reported, cleanup goes on
                print("exec_perf: destroying the sandbox: %s" % e, file=sys.stderr)
        if agent:
            agent.stop()
            # Empty directories only (rmdir): never through a mount point.
            for d in (os.path.join(agent.run_dir, "vmroot"), agent.run_dir):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
