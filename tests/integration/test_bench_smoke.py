"""The benchmark harness cannot rot: bench/run.sh --smoke runs one tiny
fixed-count iteration of every row (gRPC unary against hostagent and the
reference gRPC C++ server, Connect proto/JSON, gRPC-Web, ServerStream of
64 KiB messages, the Sandbox JSON codec) and must print a full table with
non-zero figures, every sample answer checked (grpc-status 0 / Connect body)."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, TOP


def test_bench_smoke(tmp_path):
    if shutil.which("h2load") is None:
        pytest.skip("h2load not installed (Debian package nghttp2-client): bench/run.sh needs it")
    if shutil.which("curl") is None:
        pytest.skip("curl not installed: bench/run.sh checks sample answers with it")
    for exe in ("hostagent", "tests/testd/hostagent-testd"):
        if not os.path.exists(os.path.join(BUILD, exe)):
            pytest.skip(f"{exe} not built in {BUILD}")
    out_json = tmp_path / "bench.json"
    p = subprocess.run([os.path.join(TOP, "bench", "run.sh"), "--build", BUILD, "--smoke",
                        "--json", str(out_json)], capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, f"bench/run.sh --smoke failed ({p.returncode}):\n{p.stdout}\n{p.stderr[-5000:]}"

    # The human table: one line per row, all with numbers.
    lines = [l for l in p.stdout.splitlines() if l.startswith("| ") and not l.startswith("| Row")]
    assert lines, p.stdout
    assert any("gRPC unary" in l and "hostagent" in l for l in lines), p.stdout
    assert any("Connect unary JSON" in l for l in lines), p.stdout
    assert any("gRPC-Web unary" in l for l in lines), p.stdout
    assert any("MB/s" in l for l in lines), p.stdout
    assert "FAIL" not in p.stdout, p.stdout
    assert re.search(r"^Machine: \d+ CPUs, ", p.stdout, re.M), p.stdout

    # The machine-readable results: every figure non-zero, every answer checked.
    res = json.loads(out_json.read_text())
    kinds = {r["kind"] for r in res["rows"]}
    assert {"grpc", "connect-proto", "connect-json", "grpc-web", "stream"} <= kinds
    ref_built = os.path.exists(os.path.join(BUILD, "bench", "ref_grpc_server"))
    assert ref_built == any(r["server"] == "reference" for r in res["rows"])
    for r in res["rows"]:
        s = r["sum"]
        name = f'{r["kind"]} {r["server"]} {r["transport"]} -c{r["c"]} -m{r["m"]}'
        assert r["check_error"] is None, name
        assert r["runs"] and all(x["failed"] == 0 and x["ok"] > 0 for x in r["runs"]), name
        assert s["rps"] > 0 and s["p50_ms"] > 0 and s["p99_ms"] >= s["p50_ms"], name
        if r["kind"] == "stream":
            assert s["mbps"] > 0, name
        if r["kind"] == "grpc" and r["server"] == "hostagent" and ref_built:
            assert s["vs_ref_rps"] > 0, name
    if os.path.exists(os.path.join(BUILD, "tests", "unit", "rpc", "unit_rpc_test_codec_json")):
        c = res["json_codec"]
        assert c and c["encode_ns"] > 0 and c["decode_ns"] > 0, c
