"""agent.py: the harness shared by bench/soak.py and bench/scale.py.

Starts the real daemon (hostagent) with the bundled simulator (fcsim) as its
VMM, booting the real ext4 image (scripts/build-rootfs.sh) with the real
guest agent, on loopback with real mutual TLS (scripts/gen-certs.sh); stops
it; samples its RSS, descriptors, threads and CPU time from /proc; counts
what it holds on the host (network namespaces, links, loop devices, fcsim
processes, mounts, rootfs clones) so a run can check that nothing leaks.

Needs root (namespaces, loop devices, nftables) and a plain (non-sanitizer)
build dir holding hostagent, tools/fcsim/fcsim and guest/hostagent-guest.
Library only: see soak.py and scale.py for the commands. HA_BENCH_LOG_LEVEL
(default info) sets the agent's --log-level, e.g. debug to see connection events.
"""
import os
import random
import re
import signal
import string
import subprocess
import sys
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def build_dir(arg=None):
    return os.path.abspath(arg or os.environ.get("HA_BUILD_DIR") or os.path.join(TOP, "build"))


def gen_certs(d):
    subprocess.run([os.path.join(TOP, "scripts", "gen-certs.sh"), d], check=True, stdout=subprocess.DEVNULL)
    return d


def build_images(build, d):
    env = dict(os.environ, HA_BUILD_DIR=os.environ.get("HA_GUEST_BUILD_DIR", build))
    subprocess.run([os.path.join(TOP, "scripts", "build-rootfs.sh"), d], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return d


def load_stubs(d):
    """(hostagent_pb2, hostagent_pb2_grpc) compiled from proto/ into |d|."""
    os.makedirs(d, exist_ok=True)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(TOP, "proto"),
                    "-I/usr/include", "--python_out=" + d, "--grpc_python_out=" + d,
                    "hostagent/v1/hostagent.proto"], check=True)
    if d not in sys.path:
        sys.path.insert(0, d)
    from hostagent.v1 import hostagent_pb2, hostagent_pb2_grpc
    return hostagent_pb2, hostagent_pb2_grpc


def host_routes():
    return subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout


def pick_ranges(slots):
    """A prefix and address ranges nobody on this host uses: veth pairs are
    /31s (2 addresses per slot), sandbox addresses one per slot."""
    for _ in range(50):
        prefix = "s" + "".join(random.choice(string.ascii_lowercase) for _ in range(3))
        a, b = random.randrange(200, 250), random.randrange(100, 200)
        sandbox, veth = "10.%d.0.0/16" % a, "10.%d.0.0/16" % b
        routes = host_routes()
        if slots <= 32000 and "10.%d." % a not in routes and "10.%d." % b not in routes and \
                not os.path.exists("/run/netns/%s-1" % prefix):
            return prefix, sandbox, veth
    raise RuntimeError("no free address ranges")


def proc_sample(pid):
    """RSS (KiB), open descriptors, threads and CPU seconds of |pid|."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss_kib"] = int(line.split()[1])
            elif line.startswith("Threads:"):
                out["threads"] = int(line.split()[1])
    out["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    out["cpu_s"] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def wait_ready_port(proc, read_log, timeout):
    """The TLS port from the agent's agent.ready log line (log level info or
    lower), or None when the process exits or timeout seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        m = re.search(r"event=agent\.ready .*tls_port=(\d+)", read_log())
        if m:
            return int(m.group(1))
        if proc.poll() is not None or time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def wait_serving(stub, P, timeout=120):
    """Mutating calls answer UNAVAILABLE until recovery is over: probe with
    one (NOT_FOUND means the agent takes them)."""
    import grpc
    deadline = time.monotonic() + timeout
    while True:
        try:
            stub.SetSandboxTimeout(P.SetSandboxTimeoutRequest(sandbox_id="probe", timeout_seconds=1), timeout=10)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return
            if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) or \
                    time.monotonic() > deadline:
                raise
        time.sleep(0.05)


class Agent:
    """hostagent + fcsim. |extra|: more flags (they win over the defaults).
    Log level info: the ports are read back from the agent.ready line."""

    def __init__(self, build, work, certs, images, slots=64, pool=2, extra=()):
        self.build, self.work, self.certs = build, work, certs
        self.prefix, self.sandbox_range, self.veth_range = pick_ranges(slots)
        self.run_dir = "/run/ha-" + self.prefix
        self.state_dir = os.path.join(work, "state")
        self.log_path = os.path.join(work, "agent.log")
        os.makedirs(work, exist_ok=True)
        self.args = [os.path.join(build, "hostagent"), "--state-dir", self.state_dir, "--run-dir", self.run_dir,
                     "--images-dir", images, "--log-level", os.environ.get("HA_BENCH_LOG_LEVEL", "info"),
                     "--listen", "127.0.0.1:0", "--tls-cert", os.path.join(certs, "server.pem"),
                     "--tls-key", os.path.join(certs, "server.key"), "--client-ca", os.path.join(certs, "ca.pem"),
                     "--firecracker-bin", os.path.join(build, "tools", "fcsim", "fcsim"),
                     "--slots", str(slots), "--pool", str(pool), "--net-prefix", self.prefix,
                     "--net-sandbox-range", self.sandbox_range, "--net-veth-range", self.veth_range,
                     "--overcommit", str(max(16, slots)), "--max-workers", "256"] + list(extra)
        self.proc = None
        self.channel = self.stub = None

    def start(self, pb, timeout=60):
        with open(self.log_path, "w") as logf:
            self.proc = subprocess.Popen(self.args, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        self.port = wait_ready_port(self.proc, self.log, timeout)
        if self.port is None:
            self.kill()
            raise RuntimeError("agent did not start:\n" + self.log()[-3000:])
        self.pb = pb
        self.channel = self.new_channel()
        self.stub = pb[1].HostAgentServiceStub(self.channel)
        self.wait_serving()
        return self

    def new_channel(self):
        import grpc

        def rd(name):
            with open(os.path.join(self.certs, name), "rb") as f:
                return f.read()
        creds = grpc.ssl_channel_credentials(root_certificates=rd("ca.pem"), private_key=rd("admin.key"),
                                             certificate_chain=rd("admin.pem"))
        return grpc.secure_channel("localhost:%d" % self.port, creds,
                                   options=[("grpc.use_local_subchannel_pool", 1),
                                            ("grpc.max_receive_message_length", 64 << 20)])

    def wait_serving(self, timeout=120):
        wait_serving(self.stub, self.pb[0], timeout)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def sample(self):
        return proc_sample(self.proc.pid)

    def host(self):
        """What this agent holds on the host, by kind (counts)."""
        return {k: len(v) for k, v in self.holdings().items()}

    def holdings(self):
        netns = sorted(n for n in os.listdir("/run/netns") if n.startswith(self.prefix + "-")) \
            if os.path.isdir("/run/netns") else []
        links = [l for l in subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                                           text=True).stdout.splitlines()
                 if re.search(r"^\d+: %s-" % re.escape(self.prefix), l)]
        # A loop device names its file as the VMM opened it: through the
        # run dir's vmroot bind mount (or the clone in the state dir).
        loops = [l for l in subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout.splitlines()
                 if self.state_dir in l or self.run_dir + "/" in l]
        vmms = subprocess.run(["pgrep", "-f", "--", "--api-sock %s/" % self.run_dir], capture_output=True,
                              text=True).stdout.split()
        with open("/proc/mounts") as f:
            mounts = [m for m in f.read().splitlines() if self.run_dir + "/" in m or self.state_dir in m]
        rootfs = os.path.join(self.state_dir, "rootfs")
        clones = os.listdir(rootfs) if os.path.isdir(rootfs) else []
        return {"netns": netns, "links": links, "loops": loops, "vmms": vmms, "mounts": mounts,
                "clones": clones}

    def destroy_all(self, timeout=600):
        """Destroys every sandbox (the agent keeps VMMs across its own
        restarts, so stopping it is not enough)."""
        import concurrent.futures
        P = self.pb[0]
        ids = [x.sandbox_id for x in self.stub.ListSandboxes(P.ListSandboxesRequest(), timeout=120).sandboxes]
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda i: self.stub.DestroySandbox(P.DestroySandboxRequest(sandbox_id=i),
                                                           timeout=timeout), ids))
        return len(ids)

    def stop(self, timeout=60):
        """SIGTERM; returns the exit status."""
        if self.channel:
            self.channel.close()
            self.channel = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        # The agent leaves its (empty) run dir; rmdir refuses anything else.
        for d in (os.path.join(self.run_dir, "vmroot"), self.run_dir):
            try:
                os.rmdir(d)
            except OSError:
                pass
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def pct(xs, p):
    """Nearest-rank percentile of |xs| (p in 0..100); None when empty."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def slope(points):
    """Least-squares slope of [(x, y)]; 0 with fewer than 2 points."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def machine():
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {"cpus": os.cpu_count(), "mem_gib": round(mem_kib / 1048576, 1),
            "kernel": os.uname().release}
