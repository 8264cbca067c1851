"""bench/scale.py cannot rot: 8 sandboxes on one agent with fcsim, every
figure of the report present and sane (not asserted against targets:
docs/SCALE.md has the 1,000-sandbox figures), all 8 TTLs expiring in the
same second into destroys, and nothing left on the host afterwards."""
import json
import os
import subprocess

import pytest

from conftest import BUILD, TOP, assert_no_sanitizer_report

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, loop devices, nftables")


def test_scale_smoke(tmp_path):
    out = tmp_path / "scale.json"
    p = subprocess.run(["/usr/bin/python3", os.path.join(TOP, "bench", "scale.py"), "--build", BUILD,
                        "--count", "8", "--concurrency", "4", "--settle", "1", "--idle-seconds", "2",
                        "--gets", "40", "--lists", "5", "--json", str(out), "--work", str(tmp_path / "work")],
                       capture_output=True, text=True, timeout=600)
    assert out.exists(), p.stdout + p.stderr
    log = (tmp_path / "work" / "agent" / "agent.log").read_text(errors="replace")
    assert_no_sanitizer_report(log)
    r = json.loads(out.read_text())
    assert p.returncode == 0 and r["ok"], p.stdout + p.stderr + r.get("agent_log_tail", "")
    assert r["create"]["ok"] == 8 and r["create"]["errors"] == {} and r["listed_after_create"] == 8
    # The agent holds more with 8 sandboxes than with none (each VM keeps
    # its pidfd and the watcher's copy), and every figure is a number.
    assert r["full"]["fds"] > r["base"]["fds"], (r["base"], r["full"])
    for k in ("rss_kib", "fds", "threads"):
        assert isinstance(r["per_sandbox"][k], (int, float)), k
    assert r["idle_cpu_pct"] >= 0
    for k in ("get_ms", "list_ms"):
        d = r[k]
        assert d["n"] > 0 and 0 < d["p50"] <= d["p99"] <= d["max"], (k, d)
    # Every TTL fell due within one second, and each one ended in a
    # destroy, never before it was due.
    assert r["due_in_one_second"] and r["due_spread_s"] < 1.0, (r["due_spread_s"], r["due_in_one_second"])
    rp = r["reaper"]
    assert rp["destroyed_ms"]["n"] == 8 and rp["expired_ms"]["n"] == 8, rp
    assert rp["early"] == 0 and rp["expired_ms"]["p50"] <= rp["destroyed_ms"]["p50"], rp
    assert r["sandboxes_left_listed"] == 0 and r["left_after_stop"] == {} and r["exit_status"] == 0, r
