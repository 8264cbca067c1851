"""The real image (scripts/build-rootfs.sh) booted by the simulator (fcsim),
the guest agent reached the way the host agent reaches it: Firecracker's
hybrid vsock on the VM's uds_path ("CONNECT 10000\\n" / "OK n\\n"), then
the guest protocol (proto/guest/v1/guest.proto), spoken here by an
independent Python client. Checks the contract between fcsim, the image and
the agent, and what must be verified inside the guest (a dropped
connection's process is gone there)."""
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "fcsim"))
from helpers import Fcsim, require_root_and_binary  # noqa: E402

TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("HA_BUILD_DIR", os.path.join(TOP, "build"))
GUEST_PORT = 10000


def guest_is_static():
    agent = os.path.join(BUILD, "guest", "hostagent-guest")
    if not os.path.exists(agent):
        return True
    hdrs = subprocess.run(["readelf", "-l", agent], capture_output=True, text=True).stdout
    return "Requesting program interpreter" not in hdrs


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    if not guest_is_static():
        pytest.skip("the guest agent of a sanitizer build is dynamic; images need the default build")
    d = tmp_path_factory.mktemp("images")
    env = dict(os.environ, HA_BUILD_DIR=BUILD)
    subprocess.run([os.path.join(TOP, "scripts", "build-rootfs.sh"), str(d)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return os.path.join(str(d), "base.ext4")


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("guest_pb"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(TOP, "proto"),
                    "--python_out=" + d, "guest/v1/guest.proto"], check=True)
    sys.path.insert(0, d)
    from guest.v1 import guest_pb2
    return guest_pb2


@pytest.fixture
def vm(image, tmp_path):
    require_root_and_binary()
    f = Fcsim()
    disk = os.path.join(f.dir, "disk.ext4")
    subprocess.run(["cp", "--sparse=always", image, disk], check=True)
    f.configure(disk, boot_args="console=ttyS0 reboot=k panic=1 hostname=fcsim-guest")
    f.start()
    yield f
    f.close()


class Guest:
    """A connection to the guest agent through the hybrid vsock."""

    def __init__(self, uds_path, pb, deadline_s=10.0):
        self.pb = pb
        end = time.monotonic() + deadline_s
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            try:
                s.connect(uds_path)
                s.sendall(b"CONNECT %d\n" % GUEST_PORT)
                line = b""
                while not line.endswith(b"\n"):
                    c = s.recv(1)
                    if not c:
                        break
                    line += c
                if line.startswith(b"OK "):
                    self.s = s
                    return
            except OSError:
                pass
            s.close()
            if time.monotonic() > end:
                raise TimeoutError("guest agent not reachable through " + uds_path)
            time.sleep(0.01)

    def send(self, **kw):
        req = self.pb.GuestRequest(**kw)
        body = req.SerializeToString()
        self.s.sendall(struct.pack(">BI", 0, len(body)) + body)

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            c = self.s.recv(n - len(buf))
            if not c:
                return None
            buf += c
        return buf

    def event(self):
        hdr = self._exact(5)
        if hdr is None:
            return None
        ev = self.pb.GuestEvent()
        ev.ParseFromString(self._exact(struct.unpack(">BI", hdr)[1]))
        return ev

    def close(self):
        self.s.close()


def run(vm, pb, argv, stdin=None, user="", timeout_ms=0):
    g = Guest(vm.vsock_path, pb)
    g.send(start=pb.Start(argv=argv, user=user, timeout_ms=timeout_ms))
    if stdin is not None:
        g.send(stdin=pb.StdinData(data=stdin))
        g.send(close_stdin=pb.CloseStdin())
    out, err, last, pid = b"", b"", None, None
    while True:
        ev = g.event()
        if ev is None:
            break
        kind = ev.WhichOneof("kind")
        if kind == "started":
            pid = ev.started.pid
        elif kind == "stdout":
            out += ev.stdout.data
        elif kind == "stderr":
            err += ev.stderr.data
        else:
            last = ev
    g.close()
    return out.decode(), err.decode(), last, pid


def test_exec_through_fcsim_vsock(vm, pb):
    out, _, last, pid = run(vm, pb, ["uname", "-n"])
    assert out == "fcsim-guest\n" and last.exited.exit_code == 0 and pid > 1
    for code in (0, 1, 255):
        _, _, last, _ = run(vm, pb, ["sh", "-c", f"exit {code}"])
        assert last.WhichOneof("kind") == "exited" and last.exited.exit_code == code
    out, _, last, _ = run(vm, pb, ["cat"], stdin=b"through the vsock\n")
    assert out == "through the vsock\n"
    _, _, last, _ = run(vm, pb, ["sleep", "10"], timeout_ms=200)
    assert last.exited.timed_out and last.exited.signal == 9
    _, _, last, _ = run(vm, pb, ["no-such-binary"])
    assert last.error.code == pb.ERROR_CODE_NOT_FOUND
    out, _, last, _ = run(vm, pb, ["id", "-u"], user="user")
    assert out == "1000\n"


def test_dropped_connection_kills_the_command_inside_the_guest(vm, pb):
    g = Guest(vm.vsock_path, pb)
    g.send(start=pb.Start(argv=["sh", "-c", "sleep 60 & exec sleep 61"]))
    ev = g.event()
    pid = ev.started.pid
    time.sleep(0.2)
    out, _, _, _ = run(vm, pb, ["sh", "-c", f"kill -0 {pid} && echo alive"])
    assert out == "alive\n"
    g.close()
    # Verified from inside the guest: neither the command nor its
    # background child survives (pids are the guest's).
    deadline = time.monotonic() + 5
    while True:
        out, _, _, _ = run(vm, pb, ["sh", "-c", "ps -o pid,args | grep -c '[s]leep 6' || true"])
        if out.strip() == "0":
            break
        assert time.monotonic() < deadline, out
        time.sleep(0.05)


def test_sixty_four_concurrent_commands_and_incremental_output(vm, pb):
    results = [None] * 64

    def one(i):
        results[i] = run(vm, pb, ["sh", "-c", f"sleep 0.3; echo {i}"])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (out, _, last, _) in enumerate(results):
        assert out == f"{i}\n" and last.exited.exit_code == 0

    g = Guest(vm.vsock_path, pb)
    t0 = time.monotonic()
    g.send(start=pb.Start(argv=["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; sleep 0.1; done"]))
    first = None
    n = 0
    while True:
        ev = g.event()
        kind = ev.WhichOneof("kind")
        if kind == "stdout":
            n += 1
            first = first or time.monotonic() - t0
        if kind == "exited":
            break
    g.close()
    assert first < 0.3, first
    assert n >= 8


def test_ctrl_alt_del_shuts_the_guest_down_cleanly(vm, pb):
    g = Guest(vm.vsock_path, pb)
    g.send(start=pb.Start(argv=["sleep", "60"]))
    assert g.event().WhichOneof("kind") == "started"
    t0 = time.monotonic()
    vm.ok("PUT", "/actions", {"action_type": "SendCtrlAltDel"})
    assert vm.wait_exit(timeout=10) == 0
    assert time.monotonic() - t0 < 5
    assert g.event() is None, "the connection ends with the guest"
    g.close()


def test_signal_and_drop_with_a_stdin_backlog(vm, pb):
    """A command that never reads stdin, a host that keeps sending it: the
    connection backs up end to end. A signal still arrives (out of band,
    naming the pid), and a dropped connection's command is still killed."""
    for how in ("signal", "drop"):
        g = Guest(vm.vsock_path, pb)
        g.send(start=pb.Start(argv=["sleep", "60"]))
        pid = g.event().started.pid
        blocked = threading.Event()

        def flood():
            try:
                for _ in range(256):
                    g.send(stdin=pb.StdinData(data=b"x" * 65536))
            except OSError:
                pass
            blocked.set()

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        time.sleep(0.5)
        assert not blocked.is_set(), "16 MiB of stdin cannot all fit: the sender must be blocked"
        if how == "signal":
            oob = Guest(vm.vsock_path, pb)
            oob.send(signal=pb.Signal(number=15, pid=pid))
            assert oob.event().WhichOneof("kind") == "pong"
            oob.close()
            while True:
                ev = g.event()
                assert ev is not None, "the exited event must reach the host"
                if ev.WhichOneof("kind") == "exited":
                    break
            assert ev.exited.signal == 15
            g.s.shutdown(socket.SHUT_RDWR)
        else:
            # What exec_conn_free() does for a backed-up connection: close,
            # then SIGKILL out of band, because fcsim's relay, blocked
            # writing our stdin into the guest, does not pass the close on.
            g.s.shutdown(socket.SHUT_RDWR)
            oob = Guest(vm.vsock_path, pb)
            oob.send(signal=pb.Signal(number=9, pid=pid))
            assert oob.event().WhichOneof("kind") in ("pong", "error")
            oob.close()
        t.join(timeout=10)
        g.close()
        deadline = time.monotonic() + 5
        while True:
            out, _, _, _ = run(vm, pb, ["sh", "-c", "ps -o args | grep -c '[s]leep 60' || true"])
            if out.strip() == "0":
                break
            assert time.monotonic() < deadline, (how, out)
            time.sleep(0.05)
