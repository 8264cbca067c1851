"""Fault injection (issue 9): kill -9 of the agent at seeded random moments
during creates, destroys and execs, and kill -9 of a running sandbox's VMM.
The real agent with the fcsim simulator; after every restart the host must
hold exactly what the surviving sandboxes own (tests/faults/faultlib.py
takes the inventory). HA_FAULT_SEED=<n> replays a schedule. Needs root."""
import os
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
    h.start()
    try:
        yield h
    finally:
        h.scrub()


def settle(h, sandboxes, timeout=10):
    """The host matches |sandboxes| (None: nothing at all). Polls briefly:
    the kernel detaches a killed VMM's loop device and reaps its guest a
    moment after the process is gone."""
    deadline = time.monotonic() + timeout
    while True:
        d = h.leaks(sandboxes)
        if not d or time.monotonic() > deadline:
            return d
        time.sleep(0.1)


def test_killed_vmm_fails_its_sandbox_and_releases_everything(host, pb):
    P = pb[0]
    s = host.stub()
    host.wait_serving(s)
    victim, neighbour = host.sid("victim"), host.sid("next")
    s.CreateSandbox(P.CreateSandboxRequest(sandbox_id=victim, image="base"), timeout=60)
    s.CreateSandbox(P.CreateSandboxRequest(sandbox_id=neighbour, image="base"), timeout=60)
    assert settle(host, s.ListSandboxes(P.ListSandboxesRequest()).sandboxes) == {}
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
    assert settle(host, listed) == {}
    r = s.Exec(P.ExecRequest(sandbox_id=neighbour, command=["echo", "alive"]), timeout=60)
    assert r.exit_code == 0 and r.stdout == b"alive\n"
    for sid in (victim, neighbour):
        s.DestroySandbox(P.DestroySandboxRequest(sandbox_id=sid), timeout=60)
    host.stop()
    assert settle(host, None) == {}
