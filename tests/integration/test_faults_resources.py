"""Fault injection, resources (issue 9): a full disk under the clones or the
whole state dir, the kernel refusing a slot's route, a VMM that hangs on
its API. Each fault must give a precise error with the right status code and
leave nothing behind (faultlib's host-wide inventory), and the agent must
go on serving. Real agent, real fcsim, real tmpfs and netlink; needs root."""
import ipaddress
import os
import re
import subprocess
import sys
import time

import grpc
import pytest

from conftest import TOP, binary

sys.path.insert(0, os.path.join(TOP, "tests", "faults"))
import faultlib  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: tmpfs mounts, namespaces, routes")

MiB = 1 << 20
CREATE_TIMEOUT = 120    # client deadline: far above any server-side bound here


@pytest.fixture(scope="module")
def pb(stubs):
    return faultlib.load_pb()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return faultlib.build_images(str(tmp_path_factory.mktemp("images")))


def mount_tmpfs(path, size_mib):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", path], check=True)


def umount(path):
    subprocess.run(["umount", "-l", path], capture_output=True)


def fill(dirpath, leave_bytes=0):
    """Writes <dir>/.filler until only |leave_bytes| are free (0: until
    the filesystem refuses). Returns the filler's path."""
    path = os.path.join(dirpath, ".filler")
    chunk = b"\xa5" * MiB
    with open(path, "wb", buffering=0) as f:     # unbuffered: nothing left to flush at close
        while True:
            st = os.statvfs(dirpath)
            free = st.f_bavail * st.f_frsize
            want = min(len(chunk), free - leave_bytes) if leave_bytes else len(chunk)
            if want <= 0:
                break
            try:
                f.write(chunk[:want])   # a short write when the last pages go
            except OSError:             # ENOSPC: full to the last page
                break
    return path


def clean(h, sandboxes, ours=(), timeout=30):
    """Waits until the host holds exactly what |sandboxes| own (slot
    teardown after a release is asynchronous); the test's own tmpfs mounts
    |ours| are not leaks. Returns {} or the differences."""
    deadline = time.monotonic() + timeout
    while True:
        diff = h.leaks(sandboxes) if sandboxes is not None else h.leaks()
        if "mounts" in diff:
            rest = [m for m in diff["mounts"][0] if m not in ours]
            if not rest:
                del diff["mounts"]
        if not diff or time.monotonic() > deadline:
            return diff
        time.sleep(0.2)


def live(h, stub, pb):
    return list(stub.ListSandboxes(pb[0].ListSandboxesRequest(), timeout=30).sandboxes)


def start(h):
    h.start()
    ch = h.channel()
    stub = h.stub(ch)
    h.wait_serving(stub)
    return ch, stub


def stop(h, ch, ours=()):
    ch.close()
    h.stop()
    assert clean(h, None, ours) == {}


def create_error(stub, P, sid):
    with pytest.raises(grpc.RpcError) as ei:
        stub.CreateSandbox(P.CreateSandboxRequest(sandbox_id=sid, image="base"), timeout=CREATE_TIMEOUT)
    return ei.value


def test_clone_dir_full_is_resource_exhausted_and_leaves_no_partial_clone(certs, images, tmp_path, pb):
    P = pb[0]
    h = faultlib.Host(certs, str(tmp_path / "h"), images, slots=4)
    rootfs = os.path.join(h.state_dir, "rootfs")
    mount_tmpfs(rootfs, 32)
    try:
        # The base image holds ~13 MiB of data: leave less than that.
        filler = fill(rootfs, leave_bytes=4 * MiB)
        ch, stub = start(h)
        sid = h.sid(1)
        e = create_error(stub, P, sid)
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (e.code(), e.details())
        assert e.details() == f"rootfs clone: copy image base to {rootfs}/{sid}.ext4: No space left on device", \
            e.details()
        # No clone, not even a temporary one, and nothing else of it.
        assert os.listdir(rootfs) == [".filler"]
        assert clean(h, [], [rootfs]) == {}
        # With room again the same create goes through.
        os.unlink(filler)
        sb = stub.CreateSandbox(P.CreateSandboxRequest(sandbox_id=sid, image="base"), timeout=CREATE_TIMEOUT)
        assert sb.state == P.SANDBOX_STATE_RUNNING
        stub.DestroySandbox(P.DestroySandboxRequest(sandbox_id=sid), timeout=60)
        assert clean(h, [], [rootfs]) == {}
        stop(h, ch, [rootfs])
    finally:
        h.scrub()
        umount(rootfs)


def test_state_dir_full_under_a_running_sandbox(certs, images, tmp_path, pb):
    P = pb[0]
    h = faultlib.Host(certs, str(tmp_path / "h"), images, slots=4)
    mount_tmpfs(h.state_dir, 64)
    filler = None
    try:
        ch, stub = start(h)
        a, b = h.sid(1), h.sid(2)
        stub.CreateSandbox(P.CreateSandboxRequest(sandbox_id=a, image="base"), timeout=CREATE_TIMEOUT)
        filler = fill(h.state_dir)
        e = create_error(stub, P, b)
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (e.code(), e.details())
        assert e.details() == f"cannot persist sandbox {b}: state store write failed: No space left on device", \
            e.details()
        # The running one is untouched and usable; the failed one is gone.
        got = stub.GetSandbox(P.GetSandboxRequest(sandbox_id=a), timeout=30)
        assert got.state == P.SANDBOX_STATE_RUNNING
        r = stub.Exec(P.ExecRequest(sandbox_id=a, command=["echo", "still here"]), timeout=60)
        assert (r.exit_code, r.stdout) == (0, b"still here\n")
        with pytest.raises(grpc.RpcError) as ei:
            stub.GetSandbox(P.GetSandboxRequest(sandbox_id=b), timeout=30)
        assert ei.value.code() == grpc.StatusCode.NOT_FOUND
        assert clean(h, live(h, stub, pb), [h.state_dir]) == {}
        os.unlink(filler)
        filler = None
        stub.DestroySandbox(P.DestroySandboxRequest(sandbox_id=a), timeout=60)
        assert clean(h, [], [h.state_dir]) == {}
        stop(h, ch, [h.state_dir])
    finally:
        if filler:
            os.unlink(filler)
        h.scrub()
        umount(h.state_dir)


def test_route_refused_by_the_kernel_quarantines_the_slot(certs, images, tmp_path, pb):
    P = pb[0]
    h = faultlib.Host(certs, str(tmp_path / "h"), images, slots=4)
    net = ipaddress.ip_network(h.sandbox_range)
    first, second = str(net[1]), str(net[2])     # slot n has address n of the range
    ch, stub = start(h)
    blackhole = ["ip", "route", "add", "blackhole", f"{first}/32"]
    subprocess.run(blackhole, check=True)
    try:
        e = create_error(stub, P, h.sid(1))
        assert e.code() == grpc.StatusCode.INTERNAL, (e.code(), e.details())
        assert e.details() == (f"network slot: slot 1 step HOST_ROUTE: route to sandbox address {first}: "
                               "File exists (held by something else on this host)"), e.details()
        assert clean(h, []) == {}
        # Someone else's route stays where it was.
        out = subprocess.run(["ip", "route", "show", f"{first}/32"], capture_output=True, text=True).stdout
        assert out.startswith("blackhole"), out
        # The blocked slot sits out: the next creates get other slots.
        for n, want in ((2, second), (3, str(net[3]))):
            sb = stub.CreateSandbox(P.CreateSandboxRequest(sandbox_id=h.sid(n), image="base"),
                                    timeout=CREATE_TIMEOUT)
            assert sb.state == P.SANDBOX_STATE_RUNNING and sb.ip == want, sb
        assert clean(h, live(h, stub, pb)) == {}
        for n in (2, 3):
            stub.DestroySandbox(P.DestroySandboxRequest(sandbox_id=h.sid(n)), timeout=60)
        assert clean(h, []) == {}
        # An id that names the VM driver's shared mount directory is refused.
        e = create_error(stub, P, "vmroot")
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
        assert e.details() == 'sandbox_id "vmroot" is reserved (the VMMs\' shared mount directory)', e.details()
        stop(h, ch)
    finally:
        subprocess.run(["ip", "route", "del", "blackhole", f"{first}/32"], capture_output=True)
        h.scrub()


@pytest.mark.parametrize("mode,want", [
    ("hang-all", r"vmm boot: firecracker PUT /logger: Operation timed out after (\d+) milliseconds"),
    ("hang-start", r"vmm boot: InstanceStart: firecracker PUT /actions: Operation timed out after (\d+) milliseconds"),
], ids=["hang-all", "hang-start"])
def test_vmm_hanging_on_its_api_is_killed_after_the_api_timeout(certs, images, tmp_path, pb, mode, want):
    P = pb[0]
    # The fake VMM picks its mode from the name it runs under.
    fake = str(tmp_path / f"{mode}-vmm")
    os.symlink(os.path.join(TOP, "tests", "faults", "hang_vmm.py"), fake)
    kernel = str(tmp_path / "vmlinux")
    with open(kernel, "w") as f:
        f.write("not a kernel: the fake VMM never reads it\n")
    h = faultlib.Host(certs, str(tmp_path / "h"), images, slots=4,
                      extra=["--firecracker-bin", fake, "--kernel", kernel,
                             "--vmm-api-timeout-ms", "2000", "--vmm-boot-timeout-ms", "2000"])
    ch, stub = start(h)
    try:
        e = create_error(stub, P, h.sid(1))
        assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (e.code(), e.details())
        m = re.match(want, e.details())
        assert m, e.details()
        # curl's own count of the wait: the flag's 2000 ms, not the 5000 ms
        # default (a lower bound, and an upper one only to tell the two apart).
        assert 2000 <= int(m.group(1)) < 5000, e.details()
        assert h.vmm_pids() == {}, "the hung VMM was not killed"
        assert clean(h, []) == {}
        stop(h, ch)
    finally:
        h.scrub()


def test_vmm_timeout_flags_refuse_zero(tmp_path):
    def run(*args):
        return subprocess.run([binary("hostagent"), "--listen", "none", "--h2c-listen", "127.0.0.1:0",
                               "--state-dir", str(tmp_path / "s"), "--run-dir", str(tmp_path / "r")] + list(args),
                              capture_output=True, text=True, timeout=30)
    p = run("--vmm-api-timeout-ms", "0")
    assert p.returncode == 2, p
    assert p.stderr == "hostagent: --vmm-api-timeout-ms 0: must be 1-600000 milliseconds\n", p.stderr
    conf = tmp_path / "hostagent.conf"
    conf.write_text("vmm-boot-timeout-ms = 0\n")
    p = run("--config", str(conf))
    assert p.returncode == 2, p
    assert p.stderr == "hostagent: --vmm-boot-timeout-ms 0: must be 1-600000 milliseconds\n", p.stderr
    help_text = subprocess.run([binary("hostagent"), "--help"], capture_output=True, text=True).stdout
    assert re.search(r"--vmm-api-timeout-ms VALUE .*\(default: 5000\)", help_text), help_text
    assert re.search(r"--vmm-boot-timeout-ms VALUE .*\(default: 5000\)", help_text), help_text
