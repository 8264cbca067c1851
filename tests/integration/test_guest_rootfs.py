"""The sandbox image and the guest agent as PID 1.

scripts/build-rootfs.sh must build images/base.ext4 without root, with the
static agent as /sbin/init. Then the image is booted the way the simulator
does it (new PID/mount/UTS namespaces, the image loop-mounted, chroot, the
agent as init with HA_VSOCK_UNIX_DIR=/.vsock) and driven with a second,
independent implementation of the guest protocol (Python + protobuf), to
check the PID 1 duties: mounts, hostname, users, orphan reaping.
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("HA_BUILD_DIR", os.path.join(TOP, "build"))
SCRIPT = os.path.join(TOP, "scripts", "build-rootfs.sh")
GUEST_PORT = 10000


def debugfs(image, cmd):
    return subprocess.run(["debugfs", "-R", cmd, image], capture_output=True, text=True,
                          check=True).stdout


def build_env():
    env = dict(os.environ)
    env["HA_BUILD_DIR"] = BUILD
    return env


def guest_is_static():
    agent = os.path.join(BUILD, "guest", "hostagent-guest")
    if not os.path.exists(agent):
        return True     # the script builds it (statically)
    hdrs = subprocess.run(["readelf", "-l", agent], capture_output=True, text=True).stdout
    return "Requesting program interpreter" not in hdrs


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    if not guest_is_static():
        pytest.skip("the guest agent of a sanitizer build is dynamic; images need the default build")
    d = tmp_path_factory.mktemp("images")
    subprocess.run([SCRIPT, str(d)], check=True, env=build_env(), stdout=subprocess.DEVNULL)
    return os.path.join(str(d), "base.ext4")


def test_build_rootfs_produces_an_image_with_the_agent_as_init(image):
    sbin = debugfs(image, "ls -l /sbin")
    assert " init\n" in sbin or sbin.rstrip().endswith(" init")
    init_stat = debugfs(image, "stat /sbin/init")
    assert "Type: regular" in init_stat
    assert "User:     0" in init_stat
    assert "hostagent-guest" in debugfs(image, "ls /usr/sbin")
    passwd = debugfs(image, "cat /etc/passwd")
    assert "root:x:0:0:" in passwd and "user:x:1000:1000:" in passwd
    assert "sandbox" in debugfs(image, "cat /etc/hostname")
    for d in ("proc", "sys", "dev", "tmp", "run", ".vsock"):
        assert f" {d}" in debugfs(image, "ls -l /")
    applets = {"/bin/sh", "/bin/cat", "/bin/echo", "/bin/sleep", "/bin/uname", "/bin/ls",
               "/usr/bin/head", "/usr/bin/seq", "/usr/bin/nc"}
    for path in applets:
        assert 'Fast link dest: "/bin/busybox"' in debugfs(image, f"stat {path}"), path
    # Sparse: 256 MiB apparent, a few MiB used.
    st = os.stat(image)
    assert st.st_size == 256 << 20
    assert st.st_blocks * 512 < 64 << 20


def test_build_rootfs_is_idempotent(image, tmp_path):
    before = debugfs(image, "ls -l /sbin")
    subprocess.run([SCRIPT, os.path.dirname(image)], check=True, env=build_env(),
                   stdout=subprocess.DEVNULL)
    assert debugfs(image, "ls -l /sbin").count(" init") == before.count(" init")
    leftovers = [n for n in os.listdir(os.path.dirname(image)) if n != "base.ext4"]
    assert leftovers == []


# --- a minimal second client of the guest protocol ------------------------

@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("guest_pb"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(TOP, "proto"),
                    "--python_out=" + d, "guest/v1/guest.proto"], check=True)
    sys.path.insert(0, d)
    from guest.v1 import guest_pb2
    return guest_pb2


def send(sock, msg):
    body = msg.SerializeToString()
    sock.sendall(struct.pack(">BI", 0, len(body)) + body)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def events(sock, pb):
    while True:
        hdr = recv_exact(sock, 5)
        if hdr is None:
            return
        flag, n = struct.unpack(">BI", hdr)
        assert flag == 0
        ev = pb.GuestEvent()
        ev.ParseFromString(recv_exact(sock, n))
        yield ev


def run(vsock_dir, pb, argv, user="", timeout=20):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(os.path.join(vsock_dir, str(GUEST_PORT)))
    req = pb.GuestRequest()
    req.start.argv.extend(argv)
    req.start.user = user
    send(s, req)
    out, err, last = b"", b"", None
    for ev in events(s, pb):
        kind = ev.WhichOneof("kind")
        if kind == "stdout":
            out += ev.stdout.data
        elif kind == "stderr":
            err += ev.stderr.data
        elif kind in ("exited", "error"):
            last = ev
    s.close()
    return out.decode(), err.decode(), last


class Booted:
    def __init__(self, vsock, proc):
        self.vsock, self.proc = vsock, proc


@pytest.fixture
def booted(image, tmp_path):
    """The image booted like the simulator does: agent = PID 1 of a new PID
    namespace, root = the (copied) image, vsock dir bound on /.vsock."""
    if os.geteuid() != 0:
        pytest.skip("needs root: loop mount and namespaces")
    disk = str(tmp_path / "disk.ext4")
    subprocess.run(["cp", "--sparse=always", image, disk], check=True)
    root = tmp_path / "root"
    vsock = tmp_path / "vsock"
    root.mkdir()
    vsock.mkdir()
    boot = ("mount --make-rprivate / && mount -o loop \"$1\" \"$2\" && "
            "mount --bind \"$3\" \"$2/.vsock\" && exec chroot \"$2\" /sbin/init")
    env = {"HA_VSOCK_UNIX_DIR": "/.vsock", "HA_BOOT_ARGS": "console=ttyS0 hostname=guest-under-test",
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    log = open(tmp_path / "console.log", "w")
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--kill-child",
                             "sh", "-c", boot, "boot", disk, str(root), str(vsock)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    sock_path = str(vsock / str(GUEST_PORT))
    for _ in range(500):
        if os.path.exists(sock_path) or proc.poll() is not None:
            break
        time.sleep(0.01)
    assert os.path.exists(sock_path), open(tmp_path / "console.log").read()
    yield Booted(str(vsock), proc)
    console = open(tmp_path / "console.log").read()
    assert "guest.init" in console and "level=warn" not in console and "level=error" not in console, console
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)    # --kill-child: PID 1 of the namespace dies, and with it all
        proc.wait()
    log.close()


def test_agent_as_pid1_sets_up_the_guest(booted, pb):
    out, _, last = run(booted.vsock, pb, ["uname", "-n"])
    assert last.WhichOneof("kind") == "exited" and last.exited.exit_code == 0
    assert out == "guest-under-test\n"
    out, _, _ = run(booted.vsock, pb, ["cat", "/proc/1/cmdline"])
    assert out.split("\0")[0] == "/sbin/init"
    out, _, _ = run(booted.vsock, pb, ["sh", "-c", "cat /proc/mounts"])
    mounts = {line.split()[1]: line.split()[2] for line in out.splitlines()}
    assert mounts.get("/proc") == "proc"
    assert mounts.get("/sys") == "sysfs"
    assert mounts.get("/dev") in ("devtmpfs", "tmpfs")
    assert mounts.get("/dev/pts") == "devpts"
    assert mounts.get("/tmp") == "tmpfs" and mounts.get("/run") == "tmpfs"
    out, _, _ = run(booted.vsock, pb, ["sh", "-c", "echo x > /dev/null && head -c 4 /dev/zero | wc -c"])
    assert out.strip() == "4"


def test_agent_runs_commands_as_the_image_user(booted, pb):
    out, _, last = run(booted.vsock, pb, ["sh", "-c", "id -u; id -g; echo $HOME; pwd"], user="user")
    assert last.WhichOneof("kind") == "exited", last
    assert out == "1000\n1000\n/home/user\n/home/user\n"
    _, _, last = run(booted.vsock, pb, ["true"], user="nosuchuser")
    assert last.WhichOneof("kind") == "error"
    assert last.error.code == pb.ERROR_CODE_UNKNOWN_USER


def test_pid1_reaps_orphans(booted, pb):
    # The shell exits at once; its background children are orphaned to the
    # agent (PID 1), which must reap them when they exit.
    run(booted.vsock, pb, ["sh", "-c", "for i in 1 2 3 4 5; do (sleep 0.2 &) ; done"])
    time.sleep(0.8)
    out, _, _ = run(booted.vsock, pb, ["sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null"])
    zombies = [line for line in out.splitlines() if line.split(") ")[-1].startswith("Z")]
    assert zombies == []


def test_sigterm_to_pid1_stops_the_guest(booted, pb):
    # SIGTERM is how the simulator delivers Ctrl-Alt-Del: PID 1 kills every
    # process (commands included), syncs and reboots, which ends the PID
    # namespace.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.path.join(booted.vsock, str(GUEST_PORT)))
    req = pb.GuestRequest()
    req.start.argv.extend(["sleep", "60"])
    send(s, req)
    assert next(events(s, pb)).WhichOneof("kind") == "started"
    unshare = booted.proc
    with open(f"/proc/{unshare.pid}/task/{unshare.pid}/children") as f:
        init_pid = int(f.read().split()[0])
    t0 = time.monotonic()
    os.kill(init_pid, signal.SIGTERM)
    unshare.wait(timeout=10)
    assert time.monotonic() - t0 < 5
    assert list(events(s, pb)) == [], "the connection just ends"
    s.close()

