"""Mutual TLS, per-client authorization, certificate reload, health and
reflection clients, and the operator's configuration (issue 4)."""
import os
import shutil
import signal
import subprocess
import time

import grpc
import pytest

from conftest import TOP, binary, check_clean_exit, start_agent, tls_channel

ROLES = ["--role", "spiffe://hostagent.test/admin=admin", "--role", "spiffe://hostagent.test/reader=reader"]


@pytest.fixture(scope="module")
def policy_agent(certs, tmp_path_factory):
    a = start_agent(certs, str(tmp_path_factory.mktemp("policy")), extra=ROLES)
    yield a
    check_clean_exit(a)


def s_client(agent, cert=None, ca="ca.pem"):
    """TLS 1.2, so a rejected client certificate fails the handshake itself
    (with 1.3 the client learns it only on its first read)."""
    c = agent.certs
    cmd = ["openssl", "s_client", "-tls1_2", "-connect", f"127.0.0.1:{agent.tls_port}", "-alpn", "h2",
           "-CAfile", os.path.join(c, ca), "-verify_return_error", "-brief"]
    if cert:
        cmd += ["-cert", os.path.join(c, cert + ".pem"), "-key", os.path.join(c, cert + ".key")]
    # TLS 1.3 reports a rejected client certificate after the handshake:
    # send a byte so the server's alert is read.
    return subprocess.run(cmd, input=b"\x00" * 24, capture_output=True, timeout=20)


def wait_log(agent, text, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in agent.log():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("cert,reason", [
    (None, "peer did not return a certificate"),
    ("expired", "certificate has expired"),
    ("foreign", "unable to get local issuer certificate"),
    ("serveronly", "unsuitable certificate purpose"),
])
def test_bad_client_certificates_end_the_handshake(policy_agent, cert, reason):
    p = s_client(policy_agent, cert)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode != 0 and "alert" in out.lower(), out
    assert wait_log(policy_agent, reason), policy_agent.log()[-2000:]


def test_bad_certificates_with_grpcio_and_curl(policy_agent, stubs):
    from hostagent.v1 import hostagent_pb2, hostagent_pb2_grpc
    for cert in (None, "expired", "foreign"):
        with tls_channel(policy_agent, cert=cert) as ch:
            with pytest.raises(grpc.RpcError) as e:
                hostagent_pb2_grpc.HostAgentServiceStub(ch).GetHostInfo(hostagent_pb2.GetHostInfoRequest(), timeout=5)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    c = policy_agent.certs
    p = subprocess.run(["curl", "-sS", "--http2", "--cacert", os.path.join(c, "ca.pem"),
                        f"https://localhost:{policy_agent.tls_port}/grpc.health.v1.Health/Check"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode != 0


def test_admin_allowed_reader_limited(policy_agent, stubs):
    from hostagent.v1 import hostagent_pb2, hostagent_pb2_grpc
    with tls_channel(policy_agent, cert="admin") as ch:
        s = hostagent_pb2_grpc.HostAgentServiceStub(ch)
        assert s.GetHostInfo(hostagent_pb2.GetHostInfoRequest()).version
        with pytest.raises(grpc.RpcError) as e:
            s.CreateSandbox(hostagent_pb2.CreateSandboxRequest(image="base"), timeout=30)
        assert e.value.code() != grpc.StatusCode.PERMISSION_DENIED
    with tls_channel(policy_agent, cert="reader") as ch:
        s = hostagent_pb2_grpc.HostAgentServiceStub(ch)
        assert s.GetHostInfo(hostagent_pb2.GetHostInfoRequest()).version
        with pytest.raises(grpc.RpcError) as e:
            s.CreateSandbox(hostagent_pb2.CreateSandboxRequest(image="base"))
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "CreateSandbox" in e.value.details() and "spiffe://hostagent.test/reader" in e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            s.Exec(hostagent_pb2.ExecRequest(sandbox_id="x", command=["true"]))
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_unlisted_identity_is_denied(certs, tmp_path, stubs):
    from hostagent.v1 import hostagent_pb2, hostagent_pb2_grpc
    agent = start_agent(certs, str(tmp_path / "a"), extra=["--role", "spiffe://hostagent.test/admin=admin"])
    try:
        with tls_channel(agent, cert="reader") as ch:
            with pytest.raises(grpc.RpcError) as e:
                hostagent_pb2_grpc.HostAgentServiceStub(ch).GetHostInfo(hostagent_pb2.GetHostInfoRequest())
            assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        check_clean_exit(agent)


def _fingerprint(agent):
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{agent.tls_port}", "-alpn", "h2",
                        "-cert", os.path.join(agent.certs, "admin.pem"), "-key", os.path.join(agent.certs, "admin.key")],
                       input=b"", capture_output=True, timeout=20)
    x = subprocess.run(["openssl", "x509", "-noout", "-fingerprint"], input=p.stdout, capture_output=True)
    return x.stdout.strip()


def test_sighup_reloads_certificate_without_dropping_calls(certs, tmp_path, stubs):
    from hostagent.test.v1 import test_pb2, test_pb2_grpc
    live = tmp_path / "live"
    shutil.copytree(certs, live)
    agent = start_agent(str(live), str(tmp_path / "a"))
    try:
        before = _fingerprint(agent)
        ch = tls_channel(agent)
        stub = test_pb2_grpc.TestServiceStub(ch)
        fut = stub.Sleep.future(test_pb2.SleepRequest(sleep_ms=1500, tag="reload"))
        time.sleep(0.2)
        # A bad file first: the old certificate stays.
        (live / "server.pem").write_text("not a certificate\n")
        agent.proc.send_signal(signal.SIGHUP)
        assert wait_log(agent, "tls.reload_failed")
        assert _fingerprint(agent) == before
        # Then a real new one, from a second run of the script (same CA name, new keys).
        fresh = tmp_path / "fresh"
        subprocess.run([os.path.join(TOP, "scripts", "gen-certs.sh"), str(fresh)], check=True, stdout=subprocess.DEVNULL)
        for f in ("server.pem", "server.key", "ca.pem"):
            shutil.copy(fresh / f, live / f)
        for f in ("admin.pem", "admin.key"):
            shutil.copy(fresh / f, live / f)
        agent.proc.send_signal(signal.SIGHUP)
        assert wait_log(agent, "tls.reloaded")
        after = _fingerprint(agent)
        assert after and after != before
        assert fut.result(timeout=10).cancelled is False   # the open connection kept going
        ch.close()
    finally:
        check_clean_exit(agent)


def test_refuses_public_listener_without_client_ca(certs, tmp_path):
    p = subprocess.run([binary("hostagent"), "--listen", "0.0.0.0:0", "--tls-cert", os.path.join(certs, "server.pem"),
                        "--tls-key", os.path.join(certs, "server.key")], capture_output=True, text=True, timeout=10)
    assert p.returncode != 0 and "--client-ca" in p.stderr and "--insecure" in p.stderr


def test_config_file_with_flags_overriding(certs, tmp_path, stubs):
    from hostagent.v1 import hostagent_pb2, hostagent_pb2_grpc
    cfg = tmp_path / "hostagent.conf"
    cfg.write_text(f"""# hostagent test config
listen = 127.0.0.1:1
tls-cert = {certs}/server.pem
tls-key = {certs}/server.key
client-ca = {certs}/ca.pem
role = spiffe://hostagent.test/reader=reader
slots = 7
log-format = json
""")
    # The flag overrides the file's unusable port.
    agent = start_agent(certs, str(tmp_path / "a"), extra=["--config", str(cfg), "--listen", "127.0.0.1:0"],
                        tls=False, h2c=True)
    try:
        assert '"event":"agent.ready"' in agent.log()
        with tls_channel(agent, cert="reader") as ch:
            info = hostagent_pb2_grpc.HostAgentServiceStub(ch).GetHostInfo(hostagent_pb2.GetHostInfoRequest())
            assert info.capacity.slots == 7
    finally:
        check_clean_exit(agent)


@pytest.mark.parametrize("content,err", [
    ("bogus = 1\n", "unknown key \"bogus\""),
    ("slots = many\n", "slots: \"many\" is not a non-negative integer"),
    ("listen\n", "expected \"key = value\""),
    ("role = someone=root\n", "IDENTITY=admin"),
])
def test_config_errors_name_key_and_line(tmp_path, content, err):
    cfg = tmp_path / "bad.conf"
    cfg.write_text("# comment\n" + content)
    p = subprocess.run([binary("hostagent"), "--config", str(cfg)], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2
    assert f"{cfg}:2" in p.stderr and err in p.stderr, p.stderr


def test_help_and_version():
    p = subprocess.run([binary("hostagent"), "--help"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0
    for flag in ("--listen", "--h2c-listen", "--tls-cert", "--tls-key", "--client-ca", "--role", "--state-dir",
                 "--run-dir", "--images-dir", "--firecracker-bin", "--kernel", "--slots", "--workers",
                 "--log-level", "--log-format", "--config"):
        assert flag in p.stdout
    assert "(default: 127.0.0.1:7443)" in p.stdout
    v = subprocess.run([binary("hostagent"), "--version"], capture_output=True, text=True, timeout=10)
    assert v.returncode == 0 and v.stdout.startswith("hostagent ")
    bad = subprocess.run([binary("hostagent"), "--slots"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "--slots" in bad.stderr


def test_health_check_watch_and_drain(certs, tmp_path, stubs):
    from vendored import health_v1_pb2 as health_pb2, health_v1_pb2_grpc as health_pb2_grpc
    agent = start_agent(certs, str(tmp_path / "a"))
    ch = tls_channel(agent)
    h = health_pb2_grpc.HealthStub(ch)
    for svc in ("", "hostagent.v1.HostAgentService"):
        assert h.Check(health_pb2.HealthCheckRequest(service=svc)).status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as e:
        h.Check(health_pb2.HealthCheckRequest(service="nope"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    unknown = h.Watch(health_pb2.HealthCheckRequest(service="nope"))
    assert next(unknown).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
    unknown.cancel()
    w = h.Watch(health_pb2.HealthCheckRequest(service=""))
    assert next(w).status == health_pb2.HealthCheckResponse.SERVING
    agent.proc.send_signal(signal.SIGTERM)
    assert next(w).status == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.RpcError):
        next(w)
    ch.close()
    assert agent.proc.wait(15) == 0
    check_clean_exit(agent)


def test_grpcio_reflection_client(shared_agent, stubs):
    import importlib
    from google.protobuf import descriptor_pb2
    for mod in ("v1", "v1alpha"):
        rp = importlib.import_module(f"vendored.reflection_{mod}_pb2")
        rg = importlib.import_module(f"vendored.reflection_{mod}_pb2_grpc")
        with tls_channel(shared_agent) as ch:
            stub = rg.ServerReflectionStub(ch)
            reqs = [rp.ServerReflectionRequest(list_services=""),
                    rp.ServerReflectionRequest(file_containing_symbol="hostagent.v1.HostAgentService"),
                    rp.ServerReflectionRequest(file_by_filename="google/protobuf/timestamp.proto"),
                    rp.ServerReflectionRequest(file_containing_symbol="hostagent.v1.Nope"),
                    rp.ServerReflectionRequest(file_containing_extension=rp.ExtensionRequest(
                        containing_type="hostagent.v1.Sandbox", extension_number=100))]
            out = list(stub.ServerReflectionInfo(iter(reqs)))
            assert len(out) == 5
            names = {s.name for s in out[0].list_services_response.service}
            assert {"hostagent.v1.HostAgentService", "grpc.health.v1.Health",
                    "grpc.reflection.v1alpha.ServerReflection"} <= names
            files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                     for b in out[1].file_descriptor_response.file_descriptor_proto]
            assert files[0].name == "hostagent/v1/hostagent.proto"
            assert {"google/protobuf/timestamp.proto", "google/protobuf/duration.proto"} <= {f.name for f in files}
            assert out[3].error_response.error_code == 5
            assert out[4].error_response.error_code == 5
