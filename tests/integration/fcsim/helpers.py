"""Helpers for the fcsim integration tests: building a tiny ext4 guest image,
running fcsim, speaking its REST API over the Unix socket, and checking that
nothing (process, loop device, cgroup) is left behind.

Every name a test creates (temp dirs, netns, TAPs, instance ids, hence
cgroups fcsim-<id>-<pid>) carries a per-run random prefix so parallel runs
never collide.
"""
import atexit
import ctypes
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD_DIR = os.environ.get("HA_BUILD_DIR", "/work/main/build")
FCSIM = os.path.join(BUILD_DIR, "tools", "fcsim", "fcsim")
CG_CONTROLLERS = ("cpu", "memory", "freezer")

PRE_BOOT = "The requested operation is not supported before starting the microVM."
POST_BOOT = "The requested operation is not supported after starting the microVM."

# The guest's /sbin/init: a counter the tests watch (pause), an echo server
# on vsock port 5000 and TCP 5000 that also dials host vsock port 6000 once,
# a marker file per boot, and a TERM trap
# (SendCtrlAltDel) that leaves a file behind and shuts the guest down.
INIT_SCRIPT = """#!/bin/busybox sh
trap 'echo bye > /bye; exit 0' TERM
echo "args=$HA_BOOT_ARGS vsock=$HA_VSOCK_UNIX_DIR pid=$$" > /init.log
echo boot >> /boots
/bin/guest_echo 5000 6000 &
i=0
while :; do i=$((i+1)); echo $i > /counter; /bin/busybox usleep 20000; done
"""


def require_root_and_binary():
    if os.geteuid() != 0:
        pytest.skip("needs root: namespaces, loop devices, cgroups")
    if not os.path.exists(FCSIM):
        pytest.skip(f"fcsim not built at {FCSIM}")


def unique(prefix="fcsimt"):
    return prefix + secrets.token_hex(3)


_ECHO_BIN = None


def guest_echo_binary():
    """Builds the static guest echo helper once per test session."""
    global _ECHO_BIN
    if _ECHO_BIN and os.path.exists(_ECHO_BIN):
        return _ECHO_BIN
    d = tempfile.mkdtemp(prefix="fcsimt-bin-")
    atexit.register(shutil.rmtree, d, True)
    out = os.path.join(d, "guest_echo")
    subprocess.run(["gcc", "-O2", "-static", "-o", out, os.path.join(HERE, "guest_echo.c")],
                   check=True)
    _ECHO_BIN = out
    return out


def make_image(workdir, init_script=INIT_SCRIPT, size="16M", init_symlink=False):
    """An ext4 image with busybox, the echo helper and |init_script| as
    /sbin/init (or as /bin/guest_init with an absolute symlink to it)."""
    root = os.path.join(workdir, "root")
    for d in ("bin", "sbin", "proc", "sys", "dev", "tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(root, "bin", "busybox"))
    shutil.copy(guest_echo_binary(), os.path.join(root, "bin", "guest_echo"))
    init = os.path.join(root, "bin" if init_symlink else "sbin",
                        "guest_init" if init_symlink else "init")
    with open(init, "w") as f:
        f.write(init_script)
    os.chmod(init, 0o755)
    if init_symlink:
        os.symlink("/bin/guest_init", os.path.join(root, "sbin", "init"))
    image = os.path.join(workdir, "rootfs.ext4")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", root, image, size], check=True,
                   stdout=subprocess.DEVNULL)
    return image


_LIBC = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def enter_netns(name):
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _LIBC.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
    finally:
        os.close(fd)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Fcsim:
    """One fcsim process with its own temp dir, kernel stub and sockets."""

    def __init__(self, workdir=None, netns=None, extra_args=(), vm_id=None):
        self.dir = workdir or tempfile.mkdtemp(prefix="fcsimt-", dir="/tmp")
        self.id = vm_id or unique("fcsimt")
        self.api_sock = os.path.join(self.dir, "api.sock")
        self.vsock_path = os.path.join(self.dir, "v.sock")
        self.kernel = os.path.join(self.dir, "vmlinux")
        open(self.kernel, "a").close()
        self.stderr_path = os.path.join(self.dir, f"{self.id}.stderr")
        argv = [FCSIM, "--api-sock", self.api_sock, "--id", self.id, *extra_args]
        self.stderr = open(self.stderr_path, "w")
        # setns() only, as the driver does: `ip netns exec` would also
        # remount /sys and hide the cgroup hierarchies from fcsim.
        preexec = (lambda: enter_netns(netns)) if netns else None
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     preexec_fn=preexec)
        self.conn = None
        self.wait_socket()

    def wait_socket(self, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fcsim exited with {self.proc.returncode}: {self.log()}")
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.api_sock)
                s.close()
                return
            except OSError:
                time.sleep(0.005)
        raise TimeoutError("fcsim API socket did not appear")

    def log(self):
        with open(self.stderr_path) as f:
            return f.read()

    def api(self, method, path, body=None, raw=None):
        """Returns (status, parsed JSON or None). Reuses one keep-alive connection."""
        if self.conn is None:
            self.conn = UnixHTTPConnection(self.api_sock)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
        except (ConnectionError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        payload = resp.read()
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return resp.status, (json.loads(payload) if payload else None)

    def ok(self, method, path, body=None):
        status, payload = self.api(method, path, body)
        assert status in (200, 204), (method, path, status, payload)
        return payload

    def fault(self, method, path, body=None, raw=None):
        status, payload = self.api(method, path, body, raw)
        assert status == 400, (method, path, status, payload)
        return payload["fault_message"]

    def configure(self, image, vsock=True, boot_args="console=ttyS0 reboot=k panic=1",
                  read_only=False, nets=()):
        self.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128})
        self.ok("PUT", "/boot-source", {"kernel_image_path": self.kernel, "boot_args": boot_args})
        self.ok("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": image,
                                          "is_root_device": True, "is_read_only": read_only})
        for i, (tap, mac) in enumerate(nets):
            self.ok("PUT", f"/network-interfaces/eth{i}",
                    {"iface_id": f"eth{i}", "host_dev_name": tap, "guest_mac": mac})
        if vsock:
            self.ok("PUT", "/vsock", {"guest_cid": 3, "uds_path": self.vsock_path})

    def start(self):
        t0 = time.monotonic()
        self.ok("PUT", "/actions", {"action_type": "InstanceStart"})
        return (time.monotonic() - t0) * 1000.0

    def state(self):
        return self.ok("GET", "/")["state"]

    def guest_pid(self):
        """The guest init's pid (fcsim's only child). Children are listed per
        thread, and fcsim's threads come and go (a thread may end between
        the listing and the read, its children going to another): read
        again until one pass sees exactly one."""
        for _ in range(100):
            pids = []
            for task in os.listdir(f"/proc/{self.proc.pid}/task"):
                try:
                    with open(f"/proc/{self.proc.pid}/task/{task}/children") as f:
                        pids += [int(p) for p in f.read().split()]
                except FileNotFoundError:
                    continue
            if len(pids) == 1:
                return pids[0]
            time.sleep(0.02)
        assert len(pids) == 1, pids
        return pids[0]

    def boot_us(self, field="boot_us"):
        """A figure of the last fcsim.guest.booted line: boot_us, cgroup_us,
        loop_us, setup_us or exec_us."""
        for line in reversed(self.log().splitlines()):
            if "event=fcsim.guest.booted" in line:
                for kv in line.split():
                    if kv.startswith(field + "="):
                        return int(kv[len(field) + 1:])
        return None

    def cgroup_name(self):
        return f"fcsim-{self.id}-{self.proc.pid}"

    def wait_exit(self, timeout=10):
        return self.proc.wait(timeout=timeout)

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)

    def close(self):
        if self.conn:
            self.conn.close()
        self.kill()
        self.stderr.close()
        log = self.log()
        for marker in ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:"):
            assert marker not in log, log
        cleanup_cgroups(self.cgroup_name())
        shutil.rmtree(self.dir, ignore_errors=True)


def vsock_connect(path, port, timeout=5):
    """Host side of hybrid vsock: returns (socket, reply line)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall(f"CONNECT {port}\n".encode())
    line = b""
    while not line.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        line += chunk
    return s, line.decode()


def read_counter(pid):
    for _ in range(50):
        try:
            with open(f"/proc/{pid}/root/counter") as f:
                text = f.read().strip()
            if text:
                return int(text)
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    raise AssertionError("guest counter unreadable")


def loop_devices_for(image):
    out = subprocess.run(["losetup", "-j", image], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if l.strip()]


def cgroup_dirs(name):
    return [f"/sys/fs/cgroup/{c}/{name}" for c in CG_CONTROLLERS
            if os.path.isdir(f"/sys/fs/cgroup/{c}/{name}")]


def cleanup_cgroups(name):
    """What the driver does for a SIGKILLed fcsim: thaw, then rmdir."""
    freezer = f"/sys/fs/cgroup/freezer/{name}"
    if os.path.isdir(freezer):
        try:
            with open(f"{freezer}/freezer.state", "w") as f:
                f.write("THAWED")
        except OSError:
            pass
    for d in cgroup_dirs(name):
        for _ in range(200):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.01)


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_until(pred, timeout=5.0, step=0.01):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def assert_released(image, guest_pid, cg_name, expect_cgroups_removed=True):
    """No guest process, no loop device on |image|, no mount of it, and
    the cgroups gone (or, after SIGKILL, empty and removable)."""
    assert wait_until(lambda: not pid_alive(guest_pid)), "guest process still alive"
    assert wait_until(lambda: not loop_devices_for(image)), loop_devices_for(image)
    with open("/proc/self/mountinfo") as f:
        assert image not in f.read()
    if expect_cgroups_removed:
        assert cgroup_dirs(cg_name) == [], cgroup_dirs(cg_name)
    else:
        for d in cgroup_dirs(cg_name):
            with open(f"{d}/cgroup.procs") as f:
                assert f.read().strip() == "", f"{d} still has tasks"
        cleanup_cgroups(cg_name)
        assert cgroup_dirs(cg_name) == []
