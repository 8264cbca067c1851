"""Client examples and docs/API.md against a live agent with the simulator
(issue 11): the Python (grpcio) and TypeScript (@connectrpc/connect-node)
examples create a sandbox, stream a command's output as it comes and destroy
it; every command of docs/API.md runs, in order, and succeeds; the exec
metrics moved. Needs root (namespaces, loop devices, nftables)."""
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import CLIENTS, TOP, tls_channel
from test_e2e import leftovers, start_sim, wait_serving

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, loop devices, nftables")

EXAMPLES = os.path.join(TOP, "examples")
API_MD = os.path.join(TOP, "docs", "API.md")
# A command whose output comes in two parts 1.2 s apart: a streaming client
# shows the first part long before the second.
SLOW = ["sh", "-c", "echo first; sleep 1.2; echo second; echo oops >&2; exit 3"]


@pytest.fixture(scope="module")
def pb(stubs):
    from hostagent.v1 import hostagent_pb2, hostagent_pb2_grpc
    return hostagent_pb2, hostagent_pb2_grpc


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from conftest import BUILD
    d = str(tmp_path_factory.mktemp("images"))
    env = dict(os.environ, HA_BUILD_DIR=os.environ.get("HA_GUEST_BUILD_DIR", BUILD))
    subprocess.run([os.path.join(TOP, "scripts", "build-rootfs.sh"), d], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return d


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
    from conftest import check_clean_exit
    check_clean_exit(s.agent)
    left = leftovers(s)
    assert left == {"vmm": [], "netns": [], "loop": [], "mounts": [], "clones": []}, left


def run_streaming(args, env=None, cwd=None, timeout=120):
    """Runs a client; returns (rc, [(seconds since start, stdout line)], stderr)."""
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    lines = []
    for line in iter(p.stdout.readline, b""):
        lines.append((time.monotonic() - t0, line.decode().rstrip("\n")))
    rc = p.wait(timeout)
    return rc, lines, p.stderr.read().decode()


def check_streamed(sim, pb, rc, lines, err):
    assert rc == 3, (rc, lines, err)
    assert [l for _, l in lines] == ["first", "second"], (lines, err)
    assert lines[1][0] - lines[0][0] > 0.8, f"output was not streamed as it came: {lines}"
    assert "oops" in err and "# exited code=3" in err and "# destroyed" in err, err
    sid = re.search(r"# sandbox (\S+)", err).group(1)
    ids = [x.sandbox_id for x in sim.stub.ListSandboxes(pb[0].ListSandboxesRequest()).sandboxes]
    assert sid not in ids, "the example destroys its sandbox"


def test_python_example(sim, pb, stubs):
    env = dict(os.environ, PYTHONPATH=stubs, PYTHONUNBUFFERED="1")
    rc, lines, err = run_streaming([sys.executable, os.path.join(EXAMPLES, "python", "sandbox_exec.py"),
                                    "--addr", sim.agent.tls_addr, "--certs", sim.agent.certs, "--"] + SLOW,
                                   env=env)
    check_streamed(sim, pb, rc, lines, err)


@pytest.fixture(scope="module")
def descriptors(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("desc") / "hostagent.binpb")
    subprocess.run(["protoc", "-I" + os.path.join(TOP, "proto"), "-I/usr/include", "--include_imports",
                    "--descriptor_set_out=" + out, "hostagent/v1/hostagent.proto"], check=True)
    return out


@pytest.fixture(scope="module")
def ts_example(tmp_path_factory):
    """The TypeScript example type-checked and compiled with tsc (pinned in
    tests/clients), next to the test clients' node_modules."""
    tsc = os.path.join(CLIENTS, "node_modules", ".bin", "tsc")
    if not os.path.exists(tsc):
        pytest.skip("typescript not installed in tests/clients (scripts/install-deps.sh)")
    d = tmp_path_factory.mktemp("ts")
    for f in ("sandbox_exec.ts", "tsconfig.json", "package.json"):
        shutil.copy(os.path.join(EXAMPLES, "typescript", f), d / f)
    os.symlink(os.path.join(CLIENTS, "node_modules"), d / "node_modules")
    p = subprocess.run([tsc, "-p", str(d)], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    return str(d / "dist" / "sandbox_exec.js")


def test_typescript_example(sim, pb, ts_example, descriptors):
    rc, lines, err = run_streaming(["node", ts_example, "--addr", sim.agent.tls_addr, "--certs", sim.agent.certs,
                                    "--descriptors", descriptors, "--"] + SLOW)
    check_streamed(sim, pb, rc, lines, err)


# --- docs/API.md ------------------------------------------------------------

def api_blocks():
    """[(section, label, code)] of the ```sh blocks of docs/API.md."""
    text = open(API_MD).read()
    out, section = [], None
    for m in re.finditer(r"^## ([^\n]+)$|^```sh\n(.*?)^```", text, re.M | re.S):
        if m.group(1):
            section = m.group(1).strip()
        else:
            code = m.group(2)
            out.append((section, code.splitlines()[0].lstrip("# ").strip(), code))
    return out


def proto_rpcs():
    proto = open(os.path.join(TOP, "proto", "hostagent", "v1", "hostagent.proto")).read()
    return re.findall(r"^\s*rpc (\w+)\(", proto, re.M)


def test_api_doc_covers_every_rpc_both_ways():
    blocks = api_blocks()
    for rpc in proto_rpcs():
        mine = [(label, code) for s, label, code in blocks if s == rpc]
        assert any("$buf curl" in c and f"$svc/{rpc}" in c for _, c in mine), f"{rpc}: no buf curl example"
        assert any("curl -sS" in c and "--http2" in c and f"$svc/{rpc}" in c for _, c in mine), \
            f"{rpc}: no curl --http2 example"


def test_api_doc_examples_run(sim, pb):
    blocks = api_blocks()
    setup = [code for s, label, code in blocks if label == "setup"][0]
    a = sim.agent
    buf = os.path.join(CLIENTS, "node_modules", ".bin", "buf")
    setup = re.sub(r"^HOST=.*$", f"HOST={a.tls_addr}", setup, flags=re.M)
    setup = re.sub(r"^CERTS=.*$", f"CERTS={a.certs}", setup, flags=re.M)
    setup = re.sub(r"^buf=.*$", f"buf={buf}", setup, flags=re.M)
    ran = 0
    for section, label, code in blocks:
        if label == "setup":
            continue
        p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", setup + "\n" + code], capture_output=True,
                           text=True, timeout=120, cwd=TOP)
        where = f"docs/API.md, {section}, {label}:\n{code}\nstdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-2000:]}"
        assert p.returncode == 0, where
        assert '"error"' not in p.stdout, where     # a Connect end-of-stream error
        ran += 1
        if section == "ExecStream" and label == "curl":
            assert "out" in p.stdout and "err" in p.stdout, where
        if section == "ExecInteractive":
            # stdout data is base64 in JSON: "HELLO FROM STDIN\n", "hello\n"
            assert ("SEVMTE8gRlJPTSBTVERJTgo=" if label == "buf curl" else "aGVsbG8K") in p.stdout, where
        if section == "GetHostInfo":
            assert "simulator" in p.stdout, where
    assert ran >= 2 * len(proto_rpcs())
    ids = [x.sandbox_id for x in sim.stub.ListSandboxes(pb[0].ListSandboxesRequest()).sandboxes]
    assert "demo" not in ids and "demo-curl" not in ids


def test_exec_metrics_moved(sim):
    """After the examples: exec streams were counted and their bytes too."""
    from prometheus_client.parser import text_string_to_metric_families
    c = sim.agent.certs
    p = subprocess.run(["curl", "-sS", "--fail-with-body", "--http2", "--cacert", os.path.join(c, "ca.pem"),
                        "--cert", os.path.join(c, "admin.pem"), "--key", os.path.join(c, "admin.key"),
                        f"https://{sim.agent.tls_addr}/metrics"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(p.stdout) for s in f.samples}
    assert samples[("hostagent_exec_streams_started_total", ())] >= 2
    assert samples[("hostagent_exec_streams", ())] == 0
    assert samples[("hostagent_exec_output_bytes_total", (("stream", "stdout"),))] >= len("first\nsecond\n") * 2
    assert samples[("hostagent_net_pool_slots", (("state", "in_use"),))] == 0
    assert samples[("hostagent_sandbox_create_phase_seconds_count", (("phase", "vmm_boot"),))] >= 4
    assert samples[("hostagent_net_pool_builds_total", ())] >= 1, "the pool built slots"
    assert [v for (n, l), v in samples.items() if n == "hostagent_build_info" and ("runtime", "simulator") in l] == [1]
