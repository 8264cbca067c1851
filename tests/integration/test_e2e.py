"""The whole path through the real agent: gRPC over mTLS → sandbox manager →
network slot (netns, TAP, NAT) → rootfs clone → Firecracker driver → fcsim
booting the real ext4 image in namespaces → guest agent over vsock
(issues 7 and 8). Needs root (CI is root)."""
import concurrent.futures
import hashlib
import os
import queue
import random
import signal
import socket
import string
import subprocess
import threading
import time

import grpc
import pytest

from conftest import BUILD, TOP, binary, check_clean_exit, start_agent, tls_channel

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, loop devices, nftables")


@pytest.fixture(scope="module")
def pb(stubs):
    from hostagent.v1 import hostagent_pb2, hostagent_pb2_grpc
    return hostagent_pb2, hostagent_pb2_grpc


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("images"))
    # The guest agent is a static binary: a sanitizer build cannot make it,
    # so scripts/test.sh points HA_GUEST_BUILD_DIR at a plain build then.
    env = dict(os.environ, HA_BUILD_DIR=os.environ.get("HA_GUEST_BUILD_DIR", BUILD))
    subprocess.run([os.path.join(TOP, "scripts", "build-rootfs.sh"), d], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return d


class Sim:
    def __init__(self, agent, prefix, run_dir, state_dir):
        self.agent, self.prefix, self.run_dir, self.state_dir = agent, prefix, run_dir, state_dir


def sim_args(images, prefix, run_dir, extra=()):
    # Address ranges derived from the prefix: several agents (and other
    # test runs) share this host, and slot ranges must never overlap.
    k = sum(ord(ch) * 7 ** i for i, ch in enumerate(prefix)) % 100
    return ["--images-dir", images, "--firecracker-bin", binary("fcsim"), "--slots", "24", "--pool", "2",
            "--net-prefix", prefix, "--run-dir", run_dir, "--overcommit", "64",
            "--net-sandbox-range", f"10.{100 + k}.0.0/16", "--net-veth-range", f"172.{16 + k % 16}.{k}.0/24"] + list(extra)


def start_sim(certs, workdir, images, prefix=None, run_dir=None):
    prefix = prefix or "t" + "".join(random.choice(string.ascii_lowercase) for _ in range(3))
    run_dir = run_dir or f"/run/ha-{prefix}"
    agent = start_agent(certs, workdir, binary_name="hostagent", extra=sim_args(images, prefix, run_dir))
    return Sim(agent, prefix, run_dir, os.path.join(workdir, "state"))


def vmm_pids(run_dir):
    out = subprocess.run(["pgrep", "-f", "--", f"--api-sock {run_dir}/"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def leftovers(sim):
    netns = [n for n in os.listdir("/run/netns") if n.startswith(sim.prefix + "-")] if os.path.isdir("/run/netns") else []
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    mounts = open("/proc/mounts").read()
    return {
        "vmm": vmm_pids(sim.run_dir),
        "netns": netns,
        "loop": [l for l in loops.splitlines() if sim.state_dir in l],
        "mounts": [m for m in mounts.splitlines() if sim.run_dir in m or sim.state_dir in m],
        "clones": os.listdir(os.path.join(sim.state_dir, "rootfs")) if os.path.isdir(os.path.join(sim.state_dir, "rootfs")) else [],
    }


def wait_serving(stub, pb, timeout=90):
    """Waits until recovery is over: reads work earlier, but mutating calls
    answer UNAVAILABLE until then (a keep-alive of an unknown id answers
    NOT_FOUND once the manager is ready). Then lists sandboxes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            stub.SetSandboxTimeout(pb[0].SetSandboxTimeoutRequest(sandbox_id="readiness-probe", timeout_seconds=1))
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return stub.ListSandboxes(pb[0].ListSandboxesRequest())
            if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


@pytest.fixture(scope="module")
def sim(certs, images, tmp_path_factory, pb):
    s = start_sim(certs, str(tmp_path_factory.mktemp("sim")), images)
    ch = tls_channel(s.agent)
    s.stub = pb[1].HostAgentServiceStub(ch)
    wait_serving(s.stub, pb)
    yield s
    for x in s.stub.ListSandboxes(pb[0].ListSandboxesRequest()).sandboxes:
        s.stub.DestroySandbox(pb[0].DestroySandboxRequest(sandbox_id=x.sandbox_id))
    ch.close()
    check_clean_exit(s.agent)
    left = leftovers(s)
    assert left == {"vmm": [], "netns": [], "loop": [], "mounts": [], "clones": []}, left


@pytest.fixture(scope="module")
def box(sim, pb):
    sb = sim.stub.CreateSandbox(pb[0].CreateSandboxRequest(sandbox_id="box", image="base", timeout_seconds=900,
                                                           env={"GREETING": "hi"}))
    yield sb
    sim.stub.DestroySandbox(pb[0].DestroySandboxRequest(sandbox_id="box"))


def run(sim, pb, *cmd, **kw):
    return sim.stub.Exec(pb[0].ExecRequest(sandbox_id=kw.pop("sid", "box"), command=list(cmd), **kw), timeout=60)


def test_boot_exec_network_and_destroy_leaves_nothing(sim, pb):
    P = pb[0]
    sb = sim.stub.CreateSandbox(P.CreateSandboxRequest(sandbox_id="one", image="base"))
    assert sb.state == P.SANDBOX_STATE_RUNNING and sb.ip
    assert sim.stub.GetSandbox(P.GetSandboxRequest(sandbox_id="one")).state == P.SANDBOX_STATE_RUNNING
    r = run(sim, pb, "uname", "-a", sid="one")
    assert r.exit_code == 0 and r.stdout.startswith(b"Linux")
    r = run(sim, pb, "hostname", sid="one")
    assert r.stdout.strip()
    # The host reaches a TCP listener in the guest at the sandbox address.
    run(sim, pb, "sh", "-c", "(busybox nc -l -p 8080 -e echo hello-host &) ; sleep 0.2", sid="one")
    with socket.create_connection((sb.ip, 8080), timeout=5) as c:
        assert c.recv(64) == b"hello-host\n"
    pids = vmm_pids(sim.run_dir)
    assert len(pids) == 1
    sim.stub.DestroySandbox(P.DestroySandboxRequest(sandbox_id="one"))
    assert vmm_pids(sim.run_dir) == []
    left = leftovers(sim)
    assert left["loop"] == [] and left["mounts"] == [] and left["clones"] == [] and left["vmm"] == []
    assert not os.path.exists(os.path.join(sim.run_dir, "one"))


def test_exit_codes_signals_timeouts_and_env(sim, pb, box):
    for code in (0, 1, 255):
        assert run(sim, pb, "sh", "-c", f"exit {code}").exit_code == code
    r = run(sim, pb, "sh", "-c", "kill -9 $$")
    assert r.signal == 9
    t0 = time.monotonic()
    r = run(sim, pb, "sleep", "30", timeout_seconds=1)
    assert r.timed_out and r.signal == 9 and time.monotonic() - t0 < 5
    r = run(sim, pb, "sh", "-c", "echo $GREETING $EXTRA; pwd", env={"EXTRA": "there"}, cwd="/tmp")
    assert r.stdout == b"hi there\n/tmp\n"
    r = run(sim, pb, "id", "-u", user="user")
    assert r.stdout == b"1000\n"
    r = run(sim, pb, "cat", stdin=b"round trip\x00\xff")
    assert r.stdout == b"round trip\x00\xff"
    big = bytes(range(256)) * 8192          # 2 MiB through cat: stdin and stdout at once
    r = run(sim, pb, "cat", stdin=big, max_output_bytes=3 << 20)
    assert r.stdout == big
    r = run(sim, pb, "sh", "-c", "head -c 3000000 /dev/zero", max_output_bytes=1000)
    assert r.truncated and len(r.stdout) == 1000 and r.exit_code == 0


@pytest.mark.parametrize("cmd,code,words", [
    (["no-such-binary"], grpc.StatusCode.NOT_FOUND, "no-such-binary"),
    (["true"], grpc.StatusCode.INVALID_ARGUMENT, "/does/not/exist"),
    (["true"], grpc.StatusCode.INVALID_ARGUMENT, "nobody-here"),
    ([], grpc.StatusCode.INVALID_ARGUMENT, "command"),
])
def test_exec_errors(sim, pb, box, cmd, code, words):
    kw = {}
    if words == "/does/not/exist":
        kw["cwd"] = words
    if words == "nobody-here":
        kw["user"] = words
    with pytest.raises(grpc.RpcError) as e:
        run(sim, pb, *cmd, **kw)
    assert e.value.code() == code and words in e.value.details(), e.value.details()


def test_exec_unknown_sandbox(sim, pb):
    with pytest.raises(grpc.RpcError) as e:
        run(sim, pb, "true", sid="nope")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_output_arrives_as_it_is_produced(sim, pb, box):
    req = pb[0].ExecRequest(sandbox_id="box", command=["sh", "-c", "for i in $(seq 1 20); do echo line $i; sleep 0.1; done"])
    t0 = time.monotonic()
    times, lines = [], []
    for ev in sim.stub.ExecStream(req):
        if ev.HasField("stdout"):
            times.append(time.monotonic() - t0)
            lines.append(ev.stdout.data)
    assert b"".join(lines) == b"".join(b"line %d\n" % i for i in range(1, 21))
    assert times[0] < 0.3, f"first line after {times[0]*1000:.0f} ms"
    assert times[-1] - times[0] > 1.5   # spread over the run, not delivered at the end


def test_100mib_stdout_and_stderr_intact_and_apart(sim, pb, box):
    n = 100 << 20
    cmd = ["sh", "-c", f"head -c {n} /dev/zero | tr '\\0' 'a'; head -c 1048576 /dev/zero | tr '\\0' 'b' >&2; echo done >&2"]
    out, err = hashlib.sha256(), bytearray()
    got, started = 0, False
    t0 = time.monotonic()
    for ev in sim.stub.ExecStream(pb[0].ExecRequest(sandbox_id="box", command=cmd), timeout=300):
        if ev.HasField("started"):
            started = True
        elif ev.HasField("stdout"):
            out.update(ev.stdout.data)
            got += len(ev.stdout.data)
        elif ev.HasField("stderr"):
            err += ev.stderr.data
        elif ev.HasField("exited"):
            assert ev.exited.exit_code == 0
    elapsed = time.monotonic() - t0
    assert started and got == n
    assert out.hexdigest() == hashlib.sha256(b"a" * n).hexdigest()
    assert bytes(err) == b"b" * 1048576 + b"done\n"
    print(f"100 MiB in {elapsed:.2f}s = {n / elapsed / 1e6:.0f} MB/s")


def test_interactive_stdin_close_and_signal(sim, pb, box):
    P = pb[0]
    q = queue.Queue()

    def inputs():
        while True:
            m = q.get()
            if m is None:
                return
            yield m
    q.put(P.ExecInput(request=P.ExecRequest(sandbox_id="box", command=["cat"])))
    it = sim.stub.ExecInteractive(inputs())
    assert next(it).HasField("started")
    q.put(P.ExecInput(stdin=b"hello\n"))
    ev = next(it)
    assert ev.stdout.data == b"hello\n"
    q.put(P.ExecInput(close_stdin=P.ExecInput.CloseStdin()))
    ev = next(it)
    assert ev.HasField("exited") and ev.exited.exit_code == 0
    q.put(None)
    # A signal to a command that waits.
    q2 = queue.Queue()

    def inputs2():
        while True:
            m = q2.get()
            if m is None:
                return
            yield m
    q2.put(P.ExecInput(request=P.ExecRequest(sandbox_id="box", command=["sleep", "60"])))
    it = sim.stub.ExecInteractive(inputs2())
    assert next(it).HasField("started")
    q2.put(P.ExecInput(signal=P.ExecInput.Signal(number=15)))
    ev = next(it)
    assert ev.HasField("exited") and ev.exited.signal == 15
    q2.put(None)


def test_cancel_and_disconnect_kill_the_guest_process(sim, pb, box):
    P = pb[0]
    it = sim.stub.ExecStream(P.ExecRequest(sandbox_id="box", command=["sh", "-c", "echo go; exec sleep 991"]))
    assert next(it).HasField("started")
    next(it)
    it.cancel()
    ch = tls_channel(sim.agent)
    s2 = pb[1].HostAgentServiceStub(ch)
    it2 = s2.ExecStream(P.ExecRequest(sandbox_id="box", command=["sh", "-c", "echo go; exec sleep 992"]))
    next(it2)
    next(it2)
    ch.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ps = run(sim, pb, "ps").stdout
        if b"sleep 991" not in ps and b"sleep 992" not in ps:
            break
        time.sleep(0.1)
    assert b"sleep 991" not in ps and b"sleep 992" not in ps, ps


def test_64_concurrent_commands_in_one_sandbox(sim, pb, box):
    with concurrent.futures.ThreadPoolExecutor(64) as ex:
        futs = [ex.submit(run, sim, pb, "sh", "-c", f"sleep 0.5; echo {i}") for i in range(64)]
        outs = sorted(int(f.result().stdout) for f in futs)
    assert outs == list(range(64))


def test_pause_freezes_the_guest(sim, pb, box):
    P = pb[0]
    run(sim, pb, "sh", "-c", "(i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.05; done) >/dev/null 2>&1 &")
    time.sleep(0.3)
    sim.stub.PauseSandbox(P.PauseSandboxRequest(sandbox_id="box"))
    time.sleep(0.1)
    with pytest.raises(grpc.RpcError):
        run(sim, pb, "true")            # a paused guest does not answer
    time.sleep(1.0)
    sim.stub.ResumeSandbox(P.ResumeSandboxRequest(sandbox_id="box", timeout_seconds=900))
    v1 = int(run(sim, pb, "cat", "/tmp/counter").stdout)
    time.sleep(1.0)
    v2 = int(run(sim, pb, "cat", "/tmp/counter").stdout)
    assert v2 - v1 >= 10, (v1, v2)                      # advances when running
    # While paused (1.1 s) it did not advance: the count tracks running time only.
    assert v1 < (0.3 + 0.2 + 0.6) / 0.05, v1
    run(sim, pb, "sh", "-c", "kill $(pgrep -f 'while true') 2>/dev/null; true")


def test_exec_whose_deadline_ends_while_connecting_is_deadline_exceeded(sim, pb):
    """The guest agent's vsock listener renamed away: every connection
    attempt is refused (transient) and retried until the Exec's own
    deadline, which is the caller's DEADLINE_EXCEEDED, not UNAVAILABLE (the
    agent gives up one retry interval early, before the call is marked
    expired: that used to answer UNAVAILABLE)."""
    P = pb[0]
    sim.stub.CreateSandbox(P.CreateSandboxRequest(sandbox_id="dl", image="base"))
    try:
        d = run(sim, pb, "sh", "-c", "tr '\\0' '\\n' </proc/1/environ | sed -n 's/^HA_VSOCK_UNIX_DIR=//p'",
                sid="dl").stdout.decode().strip()
        assert d.startswith("/"), d
        assert run(sim, pb, "mv", f"{d}/10000", f"{d}/10000.off", sid="dl").exit_code == 0
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as ei:
                sim.stub.Exec(P.ExecRequest(sandbox_id="dl", command=["true"]), timeout=1.5)
            assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, ei.value
    finally:
        sim.stub.DestroySandbox(P.DestroySandboxRequest(sandbox_id="dl"))


def test_pause_with_snapshot_then_resume(sim, pb):
    """PauseSandbox(snapshot=true): the VMM writes a snapshot and exits; Resume
    restores it in the same slot. fcsim's snapshots keep the disk (not the
    memory), which GetHostInfo says."""
    P = pb[0]
    assert sim.stub.GetHostInfo(P.GetHostInfoRequest()).snapshot_kind == "filesystem-only"
    sb = sim.stub.CreateSandbox(P.CreateSandboxRequest(sandbox_id="snap", image="base"))
    run(sim, pb, "sh", "-c", "echo on-disk > /root/kept; sync", sid="snap")
    before = vmm_pids(sim.run_dir)
    p = sim.stub.PauseSandbox(P.PauseSandboxRequest(sandbox_id="snap", snapshot=True))
    assert p.state == P.SANDBOX_STATE_PAUSED and p.snapshotted
    assert len(vmm_pids(sim.run_dir)) == len(before) - 1      # the VMM process is gone
    r = sim.stub.ResumeSandbox(P.ResumeSandboxRequest(sandbox_id="snap"))
    assert r.state == P.SANDBOX_STATE_RUNNING and not r.snapshotted and r.slot == sb.slot and r.ip == sb.ip
    assert run(sim, pb, "cat", "/root/kept", sid="snap").stdout == b"on-disk\n"
    sim.stub.DestroySandbox(P.DestroySandboxRequest(sandbox_id="snap"))


def test_vmm_killed_marks_sandbox_failed(sim, pb):
    P = pb[0]
    sim.stub.CreateSandbox(P.CreateSandboxRequest(sandbox_id="victim", image="base"))
    pid = [p for p in vmm_pids(sim.run_dir) if f"{sim.run_dir}/victim/" in open(f"/proc/{p}/cmdline").read().replace("\0", " ")]
    assert len(pid) == 1
    os.kill(pid[0], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        g = sim.stub.GetSandbox(P.GetSandboxRequest(sandbox_id="victim"))
        if g.state == P.SANDBOX_STATE_FAILED:
            break
        time.sleep(0.05)
    assert g.state == P.SANDBOX_STATE_FAILED and g.failure, g
    sim.stub.DestroySandbox(P.DestroySandboxRequest(sandbox_id="victim"))


def test_create_whose_client_goes_away_keeps_or_rolls_back(sim, pb):
    """The regression this project exists for: a request that ends must not
    kill a VM it already started."""
    P = pb[0]
    for i, t in enumerate((0.005, 0.02, 0.05, 0.1)):
        # The deadline may cut the create at any step, or (on a quiet
        # machine) come after it finished: either way is fine below.
        try:
            sim.stub.CreateSandbox(P.CreateSandboxRequest(sandbox_id=f"gone{i}", image="base"), timeout=t)
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED), e
    ch = tls_channel(sim.agent)
    s2 = pb[1].HostAgentServiceStub(ch)
    fut = s2.CreateSandbox.future(P.CreateSandboxRequest(sandbox_id="gone-disc", image="base"))
    time.sleep(0.04)
    ch.close()
    # Wait until every one has settled: fully running, or rolled back and gone.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        listed = {x.sandbox_id: x for x in sim.stub.ListSandboxes(P.ListSandboxesRequest()).sandboxes
                  if x.sandbox_id.startswith("gone")}
        if all(x.state == P.SANDBOX_STATE_RUNNING for x in listed.values()):
            break
        time.sleep(0.1)
    for sid in [f"gone{i}" for i in range(4)] + ["gone-disc"]:
        if sid in listed:
            assert listed[sid].state == P.SANDBOX_STATE_RUNNING
            assert run(sim, pb, "true", sid=sid).exit_code == 0   # fully there and usable
            sim.stub.DestroySandbox(P.DestroySandboxRequest(sandbox_id=sid))
        else:
            assert not os.path.exists(os.path.join(sim.run_dir, sid))
    # Create, then drop the connection right after it returned: the VM stays.
    with tls_channel(sim.agent) as ch3:
        pb[1].HostAgentServiceStub(ch3).CreateSandbox(P.CreateSandboxRequest(sandbox_id="kept", image="base"))
    time.sleep(0.5)
    assert run(sim, pb, "true", sid="kept").exit_code == 0
    sim.stub.DestroySandbox(P.DestroySandboxRequest(sandbox_id="kept"))


def test_16_sandboxes_at_once(sim, pb):
    P = pb[0]
    ids = [f"many{i}" for i in range(16)]
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda i: sim.stub.CreateSandbox(P.CreateSandboxRequest(sandbox_id=i, image="base")), ids))
        outs = list(ex.map(lambda i: run(sim, pb, "sh", "-c", "echo $(hostname)", sid=i).exit_code, ids))
        assert outs == [0] * 16
        list(ex.map(lambda i: sim.stub.DestroySandbox(P.DestroySandboxRequest(sandbox_id=i)), ids))
    assert vmm_pids(sim.run_dir) == [] or all(
        f"{sim.run_dir}/box/" in open(f"/proc/{p}/cmdline").read().replace("\0", " ") for p in vmm_pids(sim.run_dir))


def test_restart_readopts_running_vm(certs, images, tmp_path, pb):
    work = str(tmp_path / "w")
    s = start_sim(certs, work, images)
    with tls_channel(s.agent) as ch:
        st = pb[1].HostAgentServiceStub(ch)
        wait_serving(st, pb)
        st.CreateSandbox(pb[0].CreateSandboxRequest(sandbox_id="survivor", image="base"))
        st.Exec(pb[0].ExecRequest(sandbox_id="survivor", command=["sh", "-c", "echo kept > /tmp/mark"]))
    pids = vmm_pids(s.run_dir)
    s.agent.proc.kill()
    s.agent.proc.wait()
    assert vmm_pids(s.run_dir) == pids          # the VM outlived the agent
    s2 = start_sim(certs, work, images, prefix=s.prefix, run_dir=s.run_dir)
    try:
        with tls_channel(s2.agent) as ch:
            st = pb[1].HostAgentServiceStub(ch)
            wait_serving(st, pb)
            g = st.GetSandbox(pb[0].GetSandboxRequest(sandbox_id="survivor"))
            assert g.state == pb[0].SANDBOX_STATE_RUNNING
            r = st.Exec(pb[0].ExecRequest(sandbox_id="survivor", command=["cat", "/tmp/mark"]))
            assert r.stdout == b"kept\n"
            assert vmm_pids(s2.run_dir) == pids
            st.DestroySandbox(pb[0].DestroySandboxRequest(sandbox_id="survivor"))
    finally:
        check_clean_exit(s2.agent)
    assert leftovers(s2) == {"vmm": [], "netns": [], "loop": [], "mounts": [], "clones": []}
