"""Prometheus metrics (issue 11): GET /metrics on the TLS listener (HTTP/2,
client certificate) and on --metrics-listen (plain HTTP/1.1), parsed with
prometheus_client's parser; names, types and labels follow the conventions,
and counters move with the calls, connections and sandboxes they count."""
import os
import socket
import subprocess
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import check_clean_exit, start_agent, tls_channel


@pytest.fixture(scope="module")
def pb(stubs):
    from hostagent.v1 import hostagent_pb2, hostagent_pb2_grpc
    return hostagent_pb2, hostagent_pb2_grpc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def magent(certs, tmp_path_factory):
    """An agent with the process-backed fake VMM and a metrics listener."""
    port = free_port()
    os.environ["HA_FAKE_VMM"] = "0"
    try:
        a = start_agent(certs, str(tmp_path_factory.mktemp("metrics-agent")),
                        extra=["--overcommit", "64", "--metrics-listen", f"127.0.0.1:{port}"])
    finally:
        del os.environ["HA_FAKE_VMM"]
    a.metrics_port = port
    yield a
    check_clean_exit(a)


def curl_tls(agent, path="/metrics", cert="admin", extra=()):
    c = agent.certs
    args = ["curl", "-sS", "--http2", "--cacert", os.path.join(c, "ca.pem"),
            "-o", "-", "-w", "\n%{http_code} %{http_version} %{content_type}"]
    if cert:
        args += ["--cert", os.path.join(c, cert + ".pem"), "--key", os.path.join(c, cert + ".key")]
    p = subprocess.run(args + list(extra) + [f"https://localhost:{agent.tls_port}{path}"],
                       capture_output=True, text=True, timeout=30)
    body, _, meta = p.stdout.rpartition("\n")
    return p.returncode, body, meta.split(" ", 2) if meta else [], p.stderr


def scrape(agent):
    rc, body, meta, err = curl_tls(agent)
    assert rc == 0, err
    assert meta[0] == "200" and meta[1] == "2", meta
    assert meta[2].startswith("text/plain; version=0.0.4"), meta
    return parse(body)


def parse(text):
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams, text
    return fams


def value(fams, family, sample=None, **labels):
    f = fams[family]
    sample = sample or family
    for s in f.samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def wait_serving(stub, pb, timeout=15):
    import time
    deadline = time.monotonic() + timeout
    while True:
        try:
            return stub.ListSandboxes(pb[0].ListSandboxesRequest())
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_names_types_and_labels_follow_conventions(magent):
    fams = scrape(magent)
    want = {
        "hostagent_rpc_calls": ("counter", {"service", "method", "protocol", "code"}),
        "hostagent_rpc_call_duration_seconds": ("histogram", {"service", "method", "protocol"}),
        "hostagent_http2_connections": ("gauge", {"transport"}),
        "hostagent_http2_streams": ("gauge", set()),
        "hostagent_http2_connections_accepted": ("counter", {"transport"}),
        "hostagent_http2_streams_opened": ("counter", set()),
        "hostagent_exec_streams_started": ("counter", set()),
        "hostagent_tls_handshake_failures": ("counter", {"reason"}),
        "hostagent_exec_streams": ("gauge", set()),
        "hostagent_exec_output_bytes": ("counter", {"stream"}),
        "hostagent_sandboxes": ("gauge", {"state"}),
        "hostagent_slots_free": ("gauge", set()),
        "hostagent_slots_used": ("gauge", set()),
        "hostagent_memory_capacity_bytes": ("gauge", set()),
        "hostagent_sandbox_creates": ("counter", set()),
        "hostagent_sandbox_destroys": ("counter", set()),
        "hostagent_sandbox_expiries": ("counter", set()),
        "hostagent_sandbox_failures": ("counter", {"reason"}),
        "hostagent_sandbox_create_duration_seconds": ("histogram", set()),
        "hostagent_process_resident_memory_bytes": ("gauge", set()),
        "hostagent_process_open_fds": ("gauge", set()),
        "hostagent_process_threads": ("gauge", set()),
        "hostagent_build_info": ("gauge", {"version", "runtime"}),
    }
    for name, (typ, labels) in want.items():
        assert name in fams, f"{name} missing; have {sorted(fams)}"
        assert fams[name].type == typ, (name, fams[name].type)
        for s in fams[name].samples:
            assert set(s.labels) - {"le"} == labels, (name, s)
    for name, f in fams.items():
        assert name.startswith("hostagent_"), name
        # a gauge and a counter must not share a name once "_total" is cut
        assert len({s.name.replace("_bucket", "").replace("_count", "").replace("_sum", "")
                    for s in f.samples} - {name, name + "_total", name + "_created"}) == 0, (name, f.samples)
        if f.type == "counter":
            assert all(s.name.endswith("_total") for s in f.samples if not s.name.endswith("_created")), name
    # process figures are this process's
    rss = value(fams, "hostagent_process_resident_memory_bytes")
    assert 0.3 * magent.rss_bytes() < rss < 3 * magent.rss_bytes() + (8 << 20), rss
    assert value(fams, "hostagent_process_threads") >= 2
    assert value(fams, "hostagent_process_open_fds") >= 3
    assert value(fams, "hostagent_http2_connections", transport="tls") >= 1


def test_rpc_counters_and_latency_move(magent, pb):
    stub = pb[1].HostAgentServiceStub(tls_channel(magent))
    wait_serving(stub, pb)
    before = scrape(magent)
    labels = dict(service="hostagent.v1.HostAgentService", method="GetHostInfo", protocol="grpc")
    n0 = value(before, "hostagent_rpc_calls", "hostagent_rpc_calls_total", code="OK", **labels) or 0
    h0 = value(before, "hostagent_rpc_call_duration_seconds", "hostagent_rpc_call_duration_seconds_count",
               **labels) or 0
    for _ in range(3):
        stub.GetHostInfo(pb[0].GetHostInfoRequest())
    with pytest.raises(grpc.RpcError) as e:
        stub.GetSandbox(pb[0].GetSandboxRequest(sandbox_id="no-such-sandbox"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    after = scrape(magent)
    assert value(after, "hostagent_rpc_calls", "hostagent_rpc_calls_total", code="OK", **labels) == n0 + 3
    assert value(after, "hostagent_rpc_call_duration_seconds", "hostagent_rpc_call_duration_seconds_count",
                 **labels) == h0 + 3
    assert value(after, "hostagent_rpc_call_duration_seconds", "hostagent_rpc_call_duration_seconds_bucket",
                 le="+Inf", **labels) == h0 + 3
    assert value(after, "hostagent_rpc_calls", "hostagent_rpc_calls_total", code="NOT_FOUND",
                 service="hostagent.v1.HostAgentService", method="GetSandbox", protocol="grpc") >= 1
    assert value(after, "hostagent_http2_streams_opened", "hostagent_http2_streams_opened_total") > \
        value(before, "hostagent_http2_streams_opened", "hostagent_http2_streams_opened_total")


def test_sandbox_lifecycle_counters(magent, pb):
    stub = pb[1].HostAgentServiceStub(tls_channel(magent))
    wait_serving(stub, pb)
    before = scrape(magent)
    stub.CreateSandbox(pb[0].CreateSandboxRequest(sandbox_id="metrics-a", image="base"))
    mid = scrape(magent)
    assert value(mid, "hostagent_sandboxes", state="running") == \
        (value(before, "hostagent_sandboxes", state="running") or 0) + 1
    assert value(mid, "hostagent_slots_used") == value(before, "hostagent_slots_used") + 1
    assert value(mid, "hostagent_slots_free") == value(before, "hostagent_slots_free") - 1
    stub.DestroySandbox(pb[0].DestroySandboxRequest(sandbox_id="metrics-a"))
    import time
    deadline = time.monotonic() + 5
    while True:     # event counters come from a watch subscription: asynchronous
        after = scrape(magent)
        if value(after, "hostagent_sandbox_destroys", "hostagent_sandbox_destroys_total") >= \
                value(before, "hostagent_sandbox_destroys", "hostagent_sandbox_destroys_total") + 1 \
                or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for fam in ("hostagent_sandbox_creates", "hostagent_sandbox_destroys"):
        assert value(after, fam, fam + "_total") == value(before, fam, fam + "_total") + 1, fam
    c = "hostagent_sandbox_create_duration_seconds"
    assert value(after, c, c + "_count") == value(before, c, c + "_count") + 1
    assert value(after, "hostagent_sandbox_events", "hostagent_sandbox_events_total", kind="running") >= 1
    p = "hostagent_sandbox_create_phase_seconds"
    for phase in ("net", "rootfs", "vmm_start", "vmm_configure", "vmm_boot", "guest_ready"):
        assert value(after, p, p + "_count", phase=phase) == (value(before, p, p + "_count", phase=phase) or 0) + 1, phase
    assert value(after, "hostagent_sandboxes", state="running") == value(before, "hostagent_sandboxes",
                                                                          state="running")


def test_tls_handshake_failures_by_reason(magent):
    def fails(reason):
        return value(scrape(magent), "hostagent_tls_handshake_failures",
                     "hostagent_tls_handshake_failures_total", reason=reason) or 0
    n0 = fails("no_client_certificate")
    rc, _, _, _ = curl_tls(magent, cert=None)
    assert rc != 0, "a client without a certificate is refused"
    n1 = fails("no_client_certificate")
    assert n1 == n0 + 1
    # Cleartext HTTP on the TLS port.
    nt0 = fails("not_tls")
    with socket.create_connection(("127.0.0.1", magent.tls_port)) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        try:
            s.recv(100)
        except OSError:
            pass
    assert fails("not_tls") == nt0 + 1


def test_metrics_authorization_and_only_get(magent):
    # a reader (any verified client) may scrape
    rc, body, meta, err = curl_tls(magent, cert="reader")
    assert rc == 0 and meta[0] == "200", (meta, err)
    assert "hostagent_build_info" in body
    # other paths and methods are not metrics
    rc, body, meta, err = curl_tls(magent, path="/metricsx")
    assert meta[0] == "404", meta  # a Connect GET of an unknown method
    rc, body, meta, err = curl_tls(magent, extra=["-X", "POST", "-d", "x"])
    assert meta[0] != "200", meta


def test_metrics_over_h2c_without_client_ca_is_open(certs, tmp_path):
    a = start_agent(certs, str(tmp_path / "a"), tls=False)
    try:
        p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_code}",
                            f"http://{a.h2c_addr}/metrics"], capture_output=True, text=True, timeout=30)
        body, _, code = p.stdout.rpartition("\n")
        assert code == "200", p
        fams = parse(body)
        assert "hostagent_rpc_calls" in fams
        assert "hostagent_sandboxes" not in fams or not fams["hostagent_sandboxes"].samples
    finally:
        check_clean_exit(a)


def test_plain_http_listener(magent):
    url = f"http://127.0.0.1:{magent.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        fams = parse(r.read().decode())
    assert fams["hostagent_process_threads"].samples[0].value >= 2
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{magent.metrics_port}/other", timeout=10)
    assert e.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(url, data=b"x", method="POST"), timeout=10)
    assert e.value.code == 405
    # a client that sends nothing does not block the next scrape for long
    with socket.create_connection(("127.0.0.1", magent.metrics_port)):
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200


def test_plain_listener_refuses_non_loopback(certs, tmp_path):
    a = start_agent(certs, str(tmp_path / "a"), extra=["--metrics-listen", "0.0.0.0:0"], wait=False)
    assert a.proc.wait(20) != 0
    assert "refusing a non-loopback address" in a.log()


def test_plain_listener_port_in_use_is_a_clear_error(certs, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        a = start_agent(certs, str(tmp_path / "a"), extra=["--metrics-listen", f"127.0.0.1:{port}"], wait=False)
        assert a.proc.wait(20) != 0
    assert f"--metrics-listen 127.0.0.1:{port}: Address already in use" in a.log()


def test_refused_calls_are_counted_with_bounded_labels(certs, tmp_path, pb):
    """Calls refused before a handler runs (denied by role, unknown method)
    are counted; an unknown path never becomes a label value."""
    roles = ["--role", "spiffe://hostagent.test/admin=admin", "--role", "spiffe://hostagent.test/reader=reader"]
    a = start_agent(certs, str(tmp_path / "a"), extra=roles)
    try:
        stub = pb[1].HostAgentServiceStub(tls_channel(a, cert="reader"))
        with pytest.raises(grpc.RpcError) as e:
            stub.CreateSandbox(pb[0].CreateSandboxRequest(sandbox_id="nope", image="base"))
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        ch = tls_channel(a)
        bogus = ch.unary_unary("/hostagent.v1.HostAgentService/NoSuchMethod-x1y2z3")
        with pytest.raises(grpc.RpcError) as e:
            bogus(b"")
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
        rc, body, meta, err = curl_tls(a, cert="reader")
        assert rc == 0 and meta[0] == "200", (meta, err)
        fams = parse(body)
        assert value(fams, "hostagent_rpc_calls", "hostagent_rpc_calls_total", method="CreateSandbox",
                     protocol="grpc", code="PERMISSION_DENIED") == 1
        assert value(fams, "hostagent_rpc_calls", "hostagent_rpc_calls_total", method="unknown",
                     code="UNIMPLEMENTED") == 1
        assert "x1y2z3" not in body
    finally:
        check_clean_exit(a)
