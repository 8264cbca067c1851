"""fcsim guests: boot, vsock, pause/resume, stop, snapshots and cleanup
however fcsim ends. Each test builds its own tiny ext4 image (busybox, a
static echo helper, a shell-script /sbin/init; see fcsim/helpers.py)."""
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fcsim"))
from helpers import (Fcsim, assert_released, cgroup_dirs, cleanup_cgroups,  # noqa: E402
                     loop_devices_for, make_image, read_counter, require_root_and_binary,
                     vsock_connect, wait_until)


@pytest.fixture
def vm():
    require_root_and_binary()
    f = Fcsim()
    yield f
    f.close()


def booted(vm, **kw):
    image = make_image(vm.dir)
    vm.configure(image, **kw)
    vm.start()
    return image


def test_boot_runs_init_as_pid1_in_namespaces(vm):
    image = booted(vm)
    assert vm.state() == "Running"
    pid = vm.guest_pid()

    def init_log():
        try:
            with open(f"/proc/{pid}/root/init.log") as f:
                return f.read()
        except FileNotFoundError:
            return ""
    # The shell creates the file before its echo writes the line: wait for
    # the whole line, not for the file.
    assert wait_until(lambda: init_log().endswith("\n"))
    log = init_log()
    assert "pid=1" in log
    assert "args=console=ttyS0 reboot=k panic=1" in log
    assert "vsock=/.vsock" in log
    for ns in ("pid", "mnt", "uts", "ipc", "net"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    cg = vm.cgroup_name()
    with open(f"/sys/fs/cgroup/freezer/{cg}/cgroup.procs") as f:
        assert str(pid) in f.read().split()
    with open(f"/sys/fs/cgroup/memory/{cg}/memory.limit_in_bytes") as f:
        assert int(f.read()) == 128 << 20
    with open(f"/sys/fs/cgroup/cpu/{cg}/cpu.cfs_quota_us") as f:
        assert int(f.read()) == 100000
    assert len(os.listdir("/sys/block")) > 0 and image


def test_vsock_handshake_reaches_the_guest_listener(vm):
    booted(vm)
    pid = vm.guest_pid()
    assert wait_until(lambda: os.path.exists(f"/proc/{pid}/root/.vsock/5000"))
    s, line = vsock_connect(vm.vsock_path, 5000)
    assert line == f"OK {1 << 30}\n"
    s.sendall(b"hello guest")
    assert s.recv(100) == b"hello guest"
    # Half-close: the guest sees EOF, still answers, then closes its side.
    s.shutdown(socket.SHUT_WR)
    assert s.recv(100) == b""
    s.close()
    # Keyword case-insensitive; host ports count up.
    s = socket.socket(socket.AF_UNIX)
    s.connect(vm.vsock_path)
    s.sendall(b"connect 5000\nPID\n")
    data = b""
    while data.count(b"\n") < 2:
        data += s.recv(100)
    ok, guest_pid = data.decode().splitlines()[:2]
    assert ok == f"OK {(1 << 30) + 1}"
    assert int(guest_pid) < 10000
    s.close()
    # Nobody listening on the port, or a malformed request: closed, no reply.
    s, line = vsock_connect(vm.vsock_path, 5001)
    assert line == ""
    s = socket.socket(socket.AF_UNIX)
    s.connect(vm.vsock_path)
    s.sendall(b"HELLO\n")
    s.settimeout(5)
    assert s.recv(100) == b""


def test_guest_initiated_vsock_reaches_uds_path_port(vm):
    image = make_image(vm.dir)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(vm.vsock_path + "_6000")      # Firecracker's guest->host convention
    listener.listen(1)
    listener.settimeout(10)
    vm.configure(image)
    vm.start()
    conn, _ = listener.accept()
    conn.settimeout(5)
    line = b""
    while not line.endswith(b"\n"):
        line += conn.recv(1)
    assert line.startswith(b"ready ")
    conn.sendall(b"from the host")
    assert conn.recv(100) == b"from the host"
    conn.close()
    listener.close()
    os.unlink(vm.vsock_path + "_6000")


def test_vsock_many_concurrent_connections(vm):
    booted(vm)
    pid = vm.guest_pid()
    assert wait_until(lambda: os.path.exists(f"/proc/{pid}/root/.vsock/5000"))
    errors = []

    def worker(i):
        try:
            s, line = vsock_connect(vm.vsock_path, 5000, timeout=20)
            assert line.startswith("OK ")
            payload = os.urandom(200000)
            got = bytearray()

            def reader():
                while len(got) < len(payload):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got.extend(chunk)
            t = threading.Thread(target=reader)
            t.start()
            s.sendall(payload)
            t.join(20)
            assert bytes(got) == payload
            s.close()
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(e))

    time.sleep(0.2)     # let the guest's own dial at boot finish
    fds_before = len(os.listdir(f"/proc/{vm.proc.pid}/fd"))
    threads_before = len(os.listdir(f"/proc/{vm.proc.pid}/task"))
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    # Every connection's sockets and threads are gone afterwards.
    assert wait_until(lambda: len(os.listdir(f"/proc/{vm.proc.pid}/fd")) <= fds_before), \
        (fds_before, os.listdir(f"/proc/{vm.proc.pid}/fd"))
    assert wait_until(lambda: len(os.listdir(f"/proc/{vm.proc.pid}/task")) <= threads_before), \
        (threads_before, os.listdir(f"/proc/{vm.proc.pid}/task"))


def test_pause_freezes_the_guest_and_resume_thaws_it(vm):
    booted(vm)
    pid = vm.guest_pid()
    assert wait_until(lambda: os.path.exists(f"/proc/{pid}/root/counter"))
    a = read_counter(pid)
    assert wait_until(lambda: read_counter(pid) > a)
    vm.ok("PATCH", "/vm", {"state": "Paused"})
    vm.ok("PATCH", "/vm", {"state": "Paused"})     # idempotent
    assert vm.state() == "Paused"
    with open(f"/sys/fs/cgroup/freezer/{vm.cgroup_name()}/freezer.state") as f:
        assert f.read().strip() == "FROZEN"
    a = read_counter(pid)
    # A vsock request made while paused is answered only after resume.
    result = {}

    def dial():
        s, result["line"] = vsock_connect(vm.vsock_path, 5000)
        result["at"] = time.monotonic()
        s.close()
    t = threading.Thread(target=dial)
    t.start()
    time.sleep(0.5)
    assert read_counter(pid) == a
    assert "line" not in result
    resumed_at = time.monotonic()
    vm.ok("PATCH", "/vm", {"state": "Resumed"})
    t.join(5)
    assert result["line"].startswith("OK ") and result["at"] >= resumed_at
    assert vm.state() == "Running"
    assert wait_until(lambda: read_counter(pid) > a)


def test_ctrl_alt_del_stops_the_guest_and_exits_0(vm):
    image = booted(vm)
    pid = vm.guest_pid()
    cg = vm.cgroup_name()
    assert wait_until(lambda: os.path.exists(f"/proc/{pid}/root/counter"))
    vm.ok("PUT", "/actions", {"action_type": "SendCtrlAltDel"})
    assert vm.wait_exit() == 0
    assert_released(image, pid, cg)
    assert os.path.exists(vm.vsock_path) and os.path.exists(vm.api_sock)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_terminating_signal_releases_everything(vm, sig):
    image = booted(vm)
    pid = vm.guest_pid()
    cg = vm.cgroup_name()
    vm.proc.send_signal(sig)
    assert vm.wait_exit() == -sig       # dies of the signal, like Firecracker
    assert_released(image, pid, cg)
    assert "event=fcsim.exit" in vm.log()


def test_sighup_exits_156_after_cleanup(vm):
    image = booted(vm)
    pid = vm.guest_pid()
    cg = vm.cgroup_name()
    vm.proc.send_signal(signal.SIGHUP)
    assert vm.wait_exit() == 156        # Firecracker's exit code for SIGHUP
    assert_released(image, pid, cg)


@pytest.mark.parametrize("paused", [False, True])
def test_sigkill_leaves_only_empty_cgroups(vm, paused):
    image = booted(vm)
    pid = vm.guest_pid()
    cg = vm.cgroup_name()
    if paused:
        vm.ok("PATCH", "/vm", {"state": "Paused"})
    vm.proc.kill()
    vm.wait_exit()
    if paused:
        # A frozen guest cannot act on its PDEATHSIG until thawed: the
        # driver's cleanup of leftover fcsim-* cgroups thaws first.
        cleanup_cgroups(cg)
    assert_released(image, pid, cg, expect_cgroups_removed=False)


def test_guest_exit_ends_fcsim_with_0(vm):
    image = make_image(vm.dir, init_script="#!/bin/busybox sh\necho done > /done\n")
    vm.configure(image, vsock=False)
    vm.start()
    assert vm.wait_exit() == 0
    assert wait_until(lambda: not loop_devices_for(image))
    assert cgroup_dirs(vm.cgroup_name()) == []


def test_bad_image_fails_instance_start_and_leaves_nothing(vm):
    bad = os.path.join(vm.dir, "bad.ext4")
    with open(bad, "wb") as f:
        f.write(b"\0" * (4 << 20))
    vm.configure(bad)
    msg = vm.fault("PUT", "/actions", {"action_type": "InstanceStart"})
    assert msg.startswith("Failed to start the microVM: cannot mount the root drive")
    assert vm.state() == "Not started"
    assert wait_until(lambda: not loop_devices_for(bad))
    assert cgroup_dirs(vm.cgroup_name()) == []
    with open(f"/proc/{vm.proc.pid}/task/{vm.proc.pid}/children") as f:
        assert f.read().strip() == ""
    # The instance is still fresh: fix the drive and boot for real.
    good = make_image(vm.dir)
    vm.ok("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": good,
                                    "is_root_device": True, "is_read_only": False})
    vm.start()
    pid = vm.guest_pid()
    assert wait_until(lambda: os.path.exists(f"/proc/{pid}/root/.vsock/5000"))
    s, line = vsock_connect(vm.vsock_path, 5000)
    assert line.startswith("OK ")
    s.close()


def test_init_may_be_an_absolute_symlink(vm):
    # /sbin/init -> /bin/guest_init must resolve inside the image, not on the host.
    image = make_image(vm.dir, init_script="#!/bin/busybox sh\nwhile :; do sleep 1; done\n",
                       init_symlink=True)
    assert not os.path.exists("/bin/guest_init")
    vm.configure(image)
    vm.start()
    assert vm.state() == "Running"
    with open(f"/proc/{vm.guest_pid()}/cmdline") as f:
        assert f.read().startswith("/bin/busybox")


def test_image_without_init_is_refused(vm):
    image = make_image(vm.dir)
    subprocess.run(["debugfs", "-w", "-R", "rm /sbin/init", image], check=True,
                   capture_output=True)
    vm.configure(image)
    assert vm.fault("PUT", "/actions", {"action_type": "InstanceStart"}).endswith("has no /sbin/init")
    assert wait_until(lambda: not loop_devices_for(image))


def test_read_only_root(vm):
    booted(vm, read_only=True)
    pid = vm.guest_pid()
    # The script cannot write its files on a read-only root, but vsock works
    # through /dev/.vsock when the image has no /.vsock directory.
    assert wait_until(lambda: os.path.exists(f"/proc/{pid}/root/dev/.vsock/5000")
                      or os.path.exists(f"/proc/{pid}/root/.vsock/5000"))
    s, line = vsock_connect(vm.vsock_path, 5000)
    assert line.startswith("OK ")
    s.close()


def test_snapshot_create_and_load_boots_the_same_disk(vm):
    image = booted(vm)
    pid = vm.guest_pid()
    assert wait_until(lambda: os.path.exists(f"/proc/{pid}/root/counter"))
    snap = os.path.join(vm.dir, "snap.json")
    mem = os.path.join(vm.dir, "snap.mem")
    vm.ok("PATCH", "/vm", {"state": "Paused"})
    vm.ok("PUT", "/snapshot/create", {"snapshot_path": snap, "mem_file_path": mem,
                                      "snapshot_type": "Full"})
    assert os.path.getsize(mem) < 128
    assert vm.fault("PUT", "/snapshot/create", {"snapshot_path": snap, "mem_file_path": mem,
                                                "snapshot_type": "Diff"}).startswith("Diff snapshots")
    vm.kill(signal.SIGTERM)

    # A fresh process: only the logger may be configured before load.
    vm2 = Fcsim()
    try:
        vm2.ok("PUT", "/logger", {"log_path": os.path.join(vm2.dir, "log"), "level": "Info"})
        body = {"snapshot_path": snap, "mem_backend": {"backend_type": "File", "backend_path": mem},
                "resume_vm": False, "vsock_override": {"uds_path": vm2.vsock_path}}
        vm2.ok("PUT", "/snapshot/load", body)
        assert vm2.state() == "Paused"
        cfg = vm2.ok("GET", "/vm/config")
        assert cfg["vsock"]["uds_path"] == vm2.vsock_path
        assert cfg["drives"][0]["path_on_host"] == image
        pid2 = vm2.guest_pid()
        vm2.ok("PATCH", "/vm", {"state": "Resumed"})
        assert wait_until(lambda: os.path.exists(f"/proc/{pid2}/root/.vsock/5000"))
        with open(f"/proc/{pid2}/root/boots") as f:
            assert f.read().split() == ["boot", "boot"]     # same disk, booted again
        s, line = vsock_connect(vm2.vsock_path, 5000)
        assert line.startswith("OK ")
        s.close()
        assert vm2.fault("PUT", "/snapshot/load", body) == \
            "The requested operation is not supported after starting the microVM."
    finally:
        vm2.close()


def test_snapshot_load_rules(vm):
    assert vm.fault("PUT", "/snapshot/load", {"snapshot_path": "/x"}).endswith(
        "missing field: either `mem_backend` or `mem_file_path` is required.")
    assert "too many fields" in vm.fault(
        "PUT", "/snapshot/load", {"snapshot_path": "/x", "mem_file_path": "/y",
                                  "mem_backend": {"backend_type": "File", "backend_path": "/y"}})
    vm.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128})
    assert vm.fault("PUT", "/snapshot/load", {"snapshot_path": "/x", "mem_file_path": "/y"}) == \
        "Loading a microVM snapshot not allowed after configuring boot-specific resources."
    # A load that fails for real ends the process (as Firecracker).
    vm2 = Fcsim()
    try:
        msg = vm2.fault("PUT", "/snapshot/load", {"snapshot_path": "/nonexistent",
                                                  "mem_file_path": "/nonexistent"})
        assert msg.startswith("Load snapshot error")
        assert vm2.wait_exit() == 1
    finally:
        vm2.close()


def test_boot_time(vm, capsys):
    """Boots 5 guests in a row; prints the figures the report quotes."""
    image = make_image(vm.dir, init_script="#!/bin/busybox sh\nwhile :; do sleep 1; done\n")
    fields = ("boot_us", "cgroup_us", "loop_us", "setup_us", "exec_us")
    api_ms, figures = [], {k: [] for k in fields}
    for _ in range(5):
        f = Fcsim()
        try:
            f.configure(image, vsock=True)
            api_ms.append(f.start())
            for k in fields:
                figures[k].append(f.boot_us(k))
        finally:
            f.close()
    med = {k: statistics.median(v) / 1000 for k, v in figures.items()}
    with capsys.disabled():
        print(f"\nfcsim boot (5 runs): InstanceStart call median {statistics.median(api_ms):.1f} ms "
              f"(min {min(api_ms):.1f}, max {max(api_ms):.1f}); inside fcsim median "
              f"{med['boot_us']:.1f} ms = cgroups {med['cgroup_us']:.1f} + loop {med['loop_us']:.1f}"
              f" + namespaces/mounts/pivot {med['setup_us']:.1f} + exec {med['exec_us']:.1f}")
    assert statistics.median(api_ms) < 2000


def test_boots_the_project_image_with_the_real_guest_agent(vm):
    """scripts/build-rootfs.sh's image (busybox + hostagent-guest as init):
    the agent listens in the vsock directory and stops on SendCtrlAltDel."""
    top = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    script = os.path.join(top, "scripts", "build-rootfs.sh")
    from helpers import BUILD_DIR
    agent = os.path.join(BUILD_DIR, "guest", "hostagent-guest")
    if not (os.path.exists(script) and os.access(agent, os.X_OK)):
        pytest.skip("build-rootfs.sh or the guest agent is not built")
    images = os.path.join(vm.dir, "images")
    env = dict(os.environ, HA_BUILD_DIR=BUILD_DIR, HA_ROOTFS_SIZE="64M")
    r = subprocess.run([script, images], env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and "not static" in r.stderr:
        pytest.skip("sanitizer build: the agent is not static")
    assert r.returncode == 0, r.stderr
    image = os.path.join(images, "base.ext4")
    vm.configure(image)
    vm.start()
    pid = vm.guest_pid()
    vdir = f"/proc/{pid}/root/.vsock"
    ports = []
    assert wait_until(lambda: ports.extend(p for p in os.listdir(vdir) if p.isdigit()) or ports,
                      timeout=10)
    s, line = vsock_connect(vm.vsock_path, int(ports[0]))
    assert line.startswith("OK ")
    s.close()
    vm.ok("PUT", "/actions", {"action_type": "SendCtrlAltDel"})
    assert vm.wait_exit(timeout=15) == 0
    assert wait_until(lambda: not loop_devices_for(image))


def test_drive_removed_before_start_fails_cleanly(vm):
    image = make_image(vm.dir)
    vm.configure(image)
    os.unlink(image)
    msg = vm.fault("PUT", "/actions", {"action_type": "InstanceStart"})
    assert msg == f"Failed to start the microVM: cannot open drive image {image}: " \
                  "No such file or directory"
    assert vm.state() == "Not started"
    assert cgroup_dirs(vm.cgroup_name()) == []
    assert len(os.listdir(f"/proc/{vm.proc.pid}/task")) == 1, "no thread left running"
