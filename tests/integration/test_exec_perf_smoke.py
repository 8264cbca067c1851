"""bench/exec_perf.py cannot rot: a tiny run (4 MiB, one iteration, 3
first-byte samples) against the real agent, fcsim and guest agent, with
its JSON checked for every figure docs/BENCHMARKS.md ("Exec path
optimisation") quotes. Figures are not judged: performance is never
asserted by a test. Needs root (namespaces, loop devices)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import BUILD, TOP

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, loop devices, nftables")


def test_exec_perf_smoke(tmp_path):
    for exe in ("hostagent", "tools/fcsim/fcsim"):
        if not os.path.exists(os.path.join(BUILD, exe)):
            pytest.skip(f"{exe} not built in {BUILD}")
    # The static guest agent comes from $HA_GUEST_BUILD_DIR when set (a
    # sanitizer build cannot make it); exec_perf.py reads it as e2e does.
    out = tmp_path / "r.json"
    p = subprocess.run([sys.executable, os.path.join(TOP, "bench", "exec_perf.py"), "--build", BUILD,
                        "--mib", "4", "--runs", "1", "--ttfb-runs", "3", "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    r = json.loads(out.read_text())
    assert r["mib"] == 4 and len(r["runs"]) == 1
    run = r["runs"][0]
    for k in ("raw_host_mbs", "raw_guest_mbs", "exec_mbs", "raw_guest_dd_mbs", "exec_dd_mbs",
              "exec_pct_of_host_raw", "exec_pct_of_guest_raw"):
        assert run[k] > 0, (k, run)
    assert run["chunks"] >= 1 and run["dd"]["chunks"] >= 1
    for k in ("ttfb_ms", "rpc_rtt_ms", "host_echo_ms"):
        assert r[k]["n"] == 3 and 0 < r[k]["p50"] <= r[k]["p99"], (k, r[k])
    assert "median: exec head" in p.stdout, p.stdout
