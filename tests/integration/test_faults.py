"""Fault injection (issue 9): kill -9 of the agent at seeded random moments
during creates, destroys and execs, and kill -9 of a running sandbox's VMM.
The real agent with the fcsim simulator; after every restart the host must
hold exactly what the surviving sandboxes own (tests/faults/faultlib.py
takes the inventory). HA_FAULT_SEED=<n> replays a schedule. Needs root."""
import os
import pprint
import random
import re
import signal
import sys
import threading
import time

import grpc
import pytest

from conftest import TOP

sys.path.insert(0, os.path.join(TOP, "tests", "faults"))
import faultlib  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, loop devices, nftables, cgroups")


@pytest.fixture(scope="module")
def pb(stubs):
    return faultlib.load_pb()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return faultlib.build_images(str(tmp_path_factory.mktemp("images")))


@pytest.fixture
def host(certs, images, tmp_path, pb):
    h = faultlib.Host(certs, str(tmp_path / "host"), images)
    try:
        h.start()
        yield h
    finally:
        h.scrub()


def no_leaks(h, sandboxes):
    d = settle(h, sandboxes)
    short = {}
    for k, (got, want) in d.items():
        if isinstance(got, list) and isinstance(want, list):
            short[k] = {"extra": sorted(set(got) - set(want)), "missing": sorted(set(want) - set(got))}
        else:
            short[k] = {"found": got, "expected": want}
    assert d == {}, "host differs from what the sandboxes own:\n" + pprint.pformat(short, width=150)


def settle(h, sandboxes, timeout=20):
    """The host matches |sandboxes| (None: nothing at all). Polls briefly:
    the kernel detaches a killed VMM's loop device and reaps its guest a
    moment after the process is gone."""
    deadline = time.monotonic() + timeout
    while True:
        d = h.leaks(sandboxes)
        if not d or time.monotonic() > deadline:
            return d
        time.sleep(0.1)


def exec_echo(stub, P, sid, timeout=120):
    r = stub.Exec(P.ExecRequest(sandbox_id=sid, command=["echo", sid]), timeout=timeout)
    assert r.exit_code == 0 and r.stdout == (sid + "\n").encode(), (sid, r)
    return r


def test_killed_vmm_fails_its_sandbox_and_releases_everything(host, pb):
    P = pb[0]
    s = host.stub()
    host.wait_serving(s)
    victim, neighbour = host.sid("victim"), host.sid("next")
    s.CreateSandbox(P.CreateSandboxRequest(sandbox_id=victim, image="base"), timeout=60)
    s.CreateSandbox(P.CreateSandboxRequest(sandbox_id=neighbour, image="base"), timeout=60)
    no_leaks(host, s.ListSandboxes(P.ListSandboxesRequest()).sandboxes)
    pid = host.vmm_pids()[victim]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        g = s.GetSandbox(P.GetSandboxRequest(sandbox_id=victim))
        if g.state == P.SANDBOX_STATE_FAILED:
            break
        time.sleep(0.05)
    assert g.state == P.SANDBOX_STATE_FAILED, g
    assert re.match(rf"vmm pid {pid} exited \(status 137, signal 9\): ", g.failure), g.failure
    # Everything it held is released (a FAILED sandbox keeps only its row);
    # the neighbour is untouched and still usable.
    listed = s.ListSandboxes(P.ListSandboxesRequest()).sandboxes
    no_leaks(host, listed)
    r = s.Exec(P.ExecRequest(sandbox_id=neighbour, command=["echo", "alive"]), timeout=60)
    assert r.exit_code == 0 and r.stdout == b"alive\n"
    for sid in (victim, neighbour):
        s.DestroySandbox(P.DestroySandboxRequest(sandbox_id=sid), timeout=60)
    host.stop()
    no_leaks(host, None)


class Client(threading.Thread):
    """One of the 4 clients: its own sandboxes (so its model is sequential)
    and its own seeded list of operations. After a kill it parks until the
    agent is back; the operation the kill cut is not retried.

    Model per sandbox id: "up" (a Create answered OK, or recovery showed it
    RUNNING), "gone" (a Destroy answered OK, or recovery showed it absent),
    "maybe-up" / "maybe-gone" (the call was cut: either outcome is right,
    but nothing else)."""

    def __init__(self, k, rng, n_ops, run):
        super().__init__(daemon=True)
        self.k, self.rng, self.n_ops, self.run_ = k, rng, n_ops, run
        self.model, self.next_id = {}, 0
        self.done_ops = self.cut = 0
        self.parked = threading.Event()
        self.error = None

    def live(self):
        return [i for i, st in self.model.items() if st in ("up", "maybe-up", "maybe-gone")]

    def choose(self):
        up = [i for i, st in self.model.items() if st == "up"]
        r = self.rng.random()
        if not up or (len(self.live()) < 5 and r < 0.4):
            self.next_id += 1
            return "create", self.run_.host.sid(f"c{self.k}-{self.next_id}")
        if r < 0.7 or len(self.live()) >= 5 and r < 0.85:
            return "exec", self.rng.choice(up)
        return "destroy", self.rng.choice(up)

    def call(self, op, sid):
        P, stub = self.run_.P, self.run_.stub
        if op == "create":
            self.model[sid] = "maybe-up"
            stub.CreateSandbox(P.CreateSandboxRequest(sandbox_id=sid, image="base"), timeout=120)
            self.model[sid] = "up"
        elif op == "destroy":
            self.model[sid] = "maybe-gone"
            stub.DestroySandbox(P.DestroySandboxRequest(sandbox_id=sid), timeout=120)
            self.model[sid] = "gone"
        else:
            exec_echo(stub, P, sid)

    def run(self):
        try:
            while self.done_ops < self.n_ops:
                if self.run_.dead.is_set():
                    self.parked.set()
                    self.run_.resumed.wait()
                    continue
                op, sid = self.choose()
                self.done_ops += 1
                try:
                    self.call(op, sid)
                except grpc.RpcError as e:
                    # Only the kill may cut a call: the agent is gone.
                    if not (self.run_.dead.is_set() and e.code() in (grpc.StatusCode.UNAVAILABLE,
                                                                      grpc.StatusCode.CANCELLED)):
                        raise AssertionError(f"client {self.k}: {op} {sid}: {e.code()} {e.details()}")
                    self.cut += 1
        except BaseException as e:   # reported by the main thread
            self.error = e
        self.parked.set()


class Run:
    def __init__(self, host, P):
        self.host, self.P = host, P
        self.dead, self.resumed = threading.Event(), threading.Event()
        self.channel = host.channel()
        self.stub = host.stub(self.channel)


def check_after_restart(run, clients, vmm_before):
    """Recovery kept exactly the sandboxes that had reached RUNNING, with
    their very VMM processes, usable; everything else is gone; the host
    holds nothing more."""
    P, h = run.P, run.host
    listed = {x.sandbox_id: x for x in h.wait_serving(run.stub).sandboxes}
    vmm_now = h.vmm_pids()
    for c in clients:
        for sid, st in list(c.model.items()):
            x = listed.pop(sid, None)
            if st in ("up", "maybe-up", "maybe-gone") and x is not None:
                assert x.state == P.SANDBOX_STATE_RUNNING, (sid, st, x)
                assert vmm_now.get(sid) == vmm_before.get(sid) is not None, (sid, vmm_now.get(sid),
                                                                               vmm_before.get(sid))
                c.model[sid] = "up"
            else:
                assert st != "up", f"{sid}: Create had answered OK, gone after restart"
                assert x is None, (sid, st, x)
                c.model[sid] = "gone"
    assert listed == {}, f"sandboxes nobody created: {listed}"
    live = h.wait_serving(run.stub).sandboxes
    for x in live:
        exec_echo(run.stub, P, x.sandbox_id, timeout=60)
    no_leaks(h, live)
    return len(live)


def test_kill9_at_random_points_readopts_running_and_leaks_nothing(host, pb):
    seed = faultlib.seed()
    rng = random.Random(seed)
    run = Run(host, pb[0])
    host.wait_serving(run.stub)
    clients = [Client(k, random.Random(f"{seed}-{k}"), 50, run) for k in range(4)]
    t0 = time.monotonic()
    for c in clients:
        c.start()
    # The schedule: 10 kills at seeded points of the 200 operations, each a
    # seeded 0-400 ms after that point is reached, so they land inside
    # creates, destroys and execs alike whatever the machine's speed.
    points = sorted(rng.sample(range(8, 180), 10))
    delays = [rng.uniform(0, 0.4) for _ in points]
    kills, adopted = 0, 0
    for point, delay in zip(points, delays):
        while sum(c.done_ops for c in clients) < point and any(c.is_alive() for c in clients):
            time.sleep(0.01)
        time.sleep(delay)
        if not any(c.is_alive() for c in clients):
            break
        run.resumed.clear()
        run.dead.set()
        host.kill9()
        kills += 1
        deadline = time.monotonic() + 120
        for c in clients:   # a finished client is not parked: it is gone
            while c.is_alive() and not c.parked.wait(0.1):
                assert time.monotonic() < deadline, f"client {c.k} did not park"
        assert not [c.error for c in clients if c.error], [c.error for c in clients if c.error]
        vmm_before = host.vmm_pids()
        run.channel.close()
        host.start()
        run.channel = host.channel()
        run.stub = host.stub(run.channel)
        adopted += check_after_restart(run, clients, vmm_before)
        for c in clients:
            c.parked.clear()
        run.dead.clear()
        run.resumed.set()
    for c in clients:
        c.join(300)
    assert not [c.error for c in clients if c.error], [c.error for c in clients if c.error]
    ops, cut = sum(c.done_ops for c in clients), sum(c.cut for c in clients)
    # Clean up through the API, then a clean stop leaves nothing at all.
    for x in host.wait_serving(run.stub).sandboxes:
        run.stub.DestroySandbox(pb[0].DestroySandboxRequest(sandbox_id=x.sandbox_id), timeout=60)
    run.channel.close()
    host.stop()
    no_leaks(host, None)
    print(f"seed {seed}: {ops} ops, {kills} kills, {cut} ops cut, {adopted} re-adoptions checked, "
          f"{time.monotonic() - t0:.1f}s")
    assert ops == 200 and kills >= 8
