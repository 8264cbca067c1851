"""Fixtures for the integration tests: the real daemon (hostagent-testd, the
agent plus a test-only service) on loopback with real TLS, Python stubs
generated from the project's protos, and the npm test clients."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("HA_BUILD_DIR", os.path.join(TOP, "build"))
CLIENTS = os.path.join(TOP, "tests", "clients")


def binary(name):
    for sub in ("", "tests/testd", "tools/fcsim", "guest"):
        p = os.path.join(BUILD, sub, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{name} not built in {BUILD}")


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    subprocess.run([os.path.join(TOP, "scripts", "gen-certs.sh"), str(d)], check=True,
                   stdout=subprocess.DEVNULL)
    return str(d)


@pytest.fixture(scope="session")
def stubs(tmp_path_factory):
    """Python modules for the project's protos (grpc_tools from Debian)."""
    d = str(tmp_path_factory.mktemp("stubs"))
    protos = ["hostagent/v1/hostagent.proto", "hostagent/test/v1/test.proto", "google/rpc/status.proto"]
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(TOP, "proto"),
                    "-I/usr/include", "--python_out=" + d, "--grpc_python_out=" + d] + protos,
                   check=True)
    # grpc/health and grpc/reflection would be shadowed by the grpc package
    # itself: compile them under "vendored/" (module path only; the proto
    # packages, and so the wire names, are unchanged).
    src = os.path.join(d, "src", "vendored")
    os.makedirs(src)
    for rel, name in (("grpc/health/v1/health.proto", "health_v1.proto"),
                      ("grpc/reflection/v1/reflection.proto", "reflection_v1.proto"),
                      ("grpc/reflection/v1alpha/reflection.proto", "reflection_v1alpha.proto")):
        with open(os.path.join(TOP, "proto", rel)) as f, open(os.path.join(src, name), "w") as g:
            g.write(f.read())
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(d, "src"),
                    "--python_out=" + d, "--grpc_python_out=" + d, "vendored/health_v1.proto",
                    "vendored/reflection_v1.proto", "vendored/reflection_v1alpha.proto"], check=True)
    sys.path.insert(0, d)
    return d


class Agent:
    """A running daemon. Ports are chosen by the kernel (port 0) and read
    back from the agent.ready log line."""

    def __init__(self, proc, log_path, tls_port, h2c_port, certs, workdir):
        self.proc, self.log_path = proc, log_path
        self.tls_port, self.h2c_port = tls_port, h2c_port
        self.certs, self.workdir = certs, workdir

    @property
    def tls_addr(self):
        return f"localhost:{self.tls_port}"

    @property
    def h2c_addr(self):
        return f"127.0.0.1:{self.h2c_port}"

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("agent did not stop within %ss\n%s" % (timeout, self.log()[-3000:]))
        return self.proc.returncode

    def rss_bytes(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0


def start_agent(certs, workdir, extra=(), binary_name="hostagent-testd", tls=True, h2c=True,
                client_ca=True, wait=True):
    os.makedirs(workdir, exist_ok=True)
    log_path = os.path.join(workdir, "agent.log")
    args = [binary(binary_name),
            "--state-dir", os.path.join(workdir, "state"),
            "--run-dir", os.path.join(workdir, "run"),
            "--log-level", os.environ.get("HA_TEST_LOG_LEVEL", "info")]
    if tls:
        args += ["--listen", "127.0.0.1:0", "--tls-cert", os.path.join(certs, "server.pem"),
                 "--tls-key", os.path.join(certs, "server.key")]
        if client_ca:
            args += ["--client-ca", os.path.join(certs, "ca.pem")]
    else:
        args += ["--listen", "none"]
    if h2c:
        args += ["--h2c-listen", "127.0.0.1:0"]
    args += list(extra)
    logf = open(log_path, "w")
    proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    logf.close()
    agent = Agent(proc, log_path, 0, 0, certs, workdir)
    if not wait:
        return agent
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(r'event=agent\.ready .*tls_port=(\d+) h2c_port=(\d+)', agent.log()) or \
            re.search(r'"event":"agent\.ready".*"tls_port":"(\d+)","h2c_port":"(\d+)"', agent.log())
        if m:
            agent.tls_port, agent.h2c_port = int(m.group(1)), int(m.group(2))
            return agent
        if proc.poll() is not None:
            raise AssertionError("agent exited with %s:\n%s" % (proc.returncode, agent.log()))
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("agent not ready:\n" + agent.log())


SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "WARNING: ThreadSanitizer")


def assert_no_sanitizer_report(log):
    for bad in SANITIZER_REPORTS:
        assert bad not in log, log[-5000:]


def check_clean_exit(agent):
    rc = agent.stop()
    log = agent.log()
    assert_no_sanitizer_report(log)
    assert rc == 0, "agent exit status %s\n%s" % (rc, log[-3000:])


@pytest.fixture
def agent(certs, tmp_path):
    a = start_agent(certs, str(tmp_path / "agent"))
    yield a
    check_clean_exit(a)


@pytest.fixture(scope="module")
def shared_agent(certs, tmp_path_factory):
    a = start_agent(certs, str(tmp_path_factory.mktemp("shared-agent")))
    yield a
    check_clean_exit(a)


def tls_channel(agent, cert="admin", options=()):
    import grpc
    c = agent.certs
    creds = grpc.ssl_channel_credentials(
        root_certificates=open(os.path.join(c, "ca.pem"), "rb").read(),
        private_key=open(os.path.join(c, cert + ".key"), "rb").read() if cert else None,
        certificate_chain=open(os.path.join(c, cert + ".pem"), "rb").read() if cert else None)
    # Each channel gets its own connection: grpcio otherwise shares one
    # between channels, and closing one channel can take the others' down.
    opts = [("grpc.use_local_subchannel_pool", 1)] + list(options)
    return grpc.secure_channel(agent.tls_addr, creds, options=opts)


def node(script, *args, timeout=120, env=None):
    """Runs a Node.js client script from tests/clients; returns its stdout."""
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(["node", os.path.join(CLIENTS, script)] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout, cwd=CLIENTS, env=e)
    if p.returncode != 0:
        raise AssertionError(f"node {script} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout
