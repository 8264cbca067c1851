"""bench/soak.py cannot rot: a 20-second soak at concurrency 2 (the real
agent, fcsim, the real guest image) with injected client cancels. The
report must be well-formed, show work done, no error other than the
injected ones, and nothing left on the host (bench/soak.py checks the
namespaces, links, loop devices, fcsim processes, mounts and clones of its
own agent). Figures are never asserted: docs/SOAK.md has them."""
import json
import os
import subprocess

import pytest

from conftest import BUILD, TOP, assert_no_sanitizer_report

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, loop devices, nftables")

METRICS = ("rss_kib", "fds", "threads", "netns", "links", "loops", "vmms")


def test_soak_smoke(tmp_path):
    out = tmp_path / "soak.json"
    # The guest agent is static: under a sanitizer build it comes from
    # the plain build scripts/test.sh points HA_GUEST_BUILD_DIR at.
    p = subprocess.run(["/usr/bin/python3", os.path.join(TOP, "bench", "soak.py"), "--build", BUILD,
                        "--minutes", "0.34", "--concurrency", "2", "--cancel-rate", "0.1",
                        "--sample-seconds", "2", "--json", str(out), "--work", str(tmp_path / "work")],
                       capture_output=True, text=True, timeout=600)
    assert out.exists(), p.stdout + p.stderr
    log = (tmp_path / "work" / "agent" / "agent.log").read_text(errors="replace")
    assert_no_sanitizer_report(log)
    r = json.loads(out.read_text())
    assert p.returncode == 0 and r["ok"], p.stdout + p.stderr + r.get("agent_log_tail", "")
    assert r["unexpected"] == {}, r["unexpected_examples"]
    # Work was done, and every injected outcome is of a known kind.
    assert r["ops"].get("create", 0) >= 2 and r["ops"].get("exec", 0) >= 2 and r["ops"].get("destroy", 0) >= 2, r
    assert set(r["injected"]) <= {"create:CANCELLED", "exec:CANCELLED", "destroy:CANCELLED",
                                  "destroy:NOT_FOUND"}, r["injected"]
    # Well-formed: samples over the run, every metric in every part.
    assert len(r["samples"]) >= 5, r["samples"]
    for k in METRICS:
        assert isinstance(r["first"][k], int) and isinstance(r["last"][k], int), k
        assert len(r["slope_per_min_by_third"][k]) == 3, k
    assert r["first"]["rss_kib"] > 0 and r["first"]["fds"] > 0 and r["first"]["threads"] > 0
    # Nothing left: no sandbox listed, every VMM gone before the agent
    # stopped, and nothing of the agent's on the host after it stopped.
    assert r["sandboxes_left_listed"] == 0
    assert r["after_destroy_all"]["vmms"] == 0, r["after_destroy_all"]
    assert r["left_after_stop"] == {} and r["exit_status"] == 0, r
    assert "Left after stop: nothing" in p.stdout, p.stdout
