"""Connect, gRPC-Web and JSON on the same TLS listener with real clients:
@connectrpc/connect-node, buf curl (three protocols), curl --http2 (issue 3)."""
import base64
import json
import os
import subprocess
import urllib.parse

import pytest

from conftest import CLIENTS, TOP, node
from h2raw import envelope, h2c

BUF = os.path.join(CLIENTS, "node_modules", ".bin", "buf")


@pytest.fixture(scope="module")
def descset(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("desc") / "all.desc")
    subprocess.run(["protoc", "-I" + os.path.join(TOP, "proto"), "-I/usr/include", "--include_imports",
                    "--descriptor_set_out=" + out, "hostagent/test/v1/test.proto",
                    "hostagent/v1/hostagent.proto"], check=True)
    return out


def buf_curl(agent, *args, protocol="connect", cert="admin", timeout=60):
    c = agent.certs
    cmd = [BUF, "curl", "--protocol", protocol, "--cacert", os.path.join(c, "ca.pem")]
    if cert:
        cmd += ["--cert", os.path.join(c, cert + ".pem"), "--key", os.path.join(c, cert + ".key")]
    cmd += list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def curl(agent, path, *args, cert="admin"):
    c = agent.certs
    cmd = ["curl", "-sS", "--http2", "--cacert", os.path.join(c, "ca.pem"),
           "--cert", os.path.join(c, cert + ".pem"), "--key", os.path.join(c, cert + ".key"),
           "-w", "\n%{http_code}", f"https://localhost:{agent.tls_port}{path}"] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    body, _, code = p.stdout.rpartition("\n")
    return int(code), body


def test_connect_node_all_transports(shared_agent, descset):
    out = node("connect_suite.mjs", shared_agent.tls_port, shared_agent.certs, descset)
    assert "ALL OK" in out, out


@pytest.mark.parametrize("protocol", ["connect", "grpc", "grpcweb"])
def test_buf_curl_reflection_and_call(shared_agent, protocol):
    url = f"https://localhost:{shared_agent.tls_port}"
    p = buf_curl(shared_agent, url, "--list-services", protocol=protocol)
    assert p.returncode == 0, p.stderr
    services = p.stdout.split()
    for s in ("hostagent.v1.HostAgentService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"):
        assert s in services
    p = buf_curl(shared_agent, url, "--list-methods", protocol=protocol)
    assert "hostagent.v1.HostAgentService/CreateSandbox" in p.stdout.split()
    # A call resolved by reflection alone: no schema file anywhere.
    p = buf_curl(shared_agent, url + "/hostagent.v1.HostAgentService/GetHostInfo", "-d", "{}", protocol=protocol)
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["version"] and "uptime" in info
    p = buf_curl(shared_agent, url + "/grpc.health.v1.Health/Check", "-d", '{"service":"hostagent.v1.HostAgentService"}',
                 protocol=protocol)
    assert json.loads(p.stdout) == {"status": "SERVING"}


def test_curl_connect_json_unary(shared_agent):
    code, body = curl(shared_agent, "/hostagent.test.v1.TestService/Echo", "-H", "content-type: application/json",
                      "-H", "connect-protocol-version: 1", "-d", '{"message":"hi","payload":"/w=="}')
    assert code == 200
    assert json.loads(body) == {"message": "hi", "payload": "/w=="}


def test_curl_connect_get_with_query(shared_agent):
    q = urllib.parse.urlencode({"connect": "v1", "encoding": "json", "message": "{}"})
    code, body = curl(shared_agent, "/hostagent.v1.HostAgentService/GetHostInfo?" + q)
    assert code == 200 and json.loads(body)["version"]
    msg = base64.urlsafe_b64encode(b"").decode().rstrip("=")
    q = urllib.parse.urlencode({"connect": "v1", "encoding": "proto", "base64": "1", "message": msg})
    c = shared_agent.certs
    p = subprocess.run(["curl", "-sS", "--http2", "--cacert", os.path.join(c, "ca.pem"), "--cert",
                        os.path.join(c, "admin.pem"), "--key", os.path.join(c, "admin.key"), "-o", "/dev/null",
                        "-w", "%{http_code} %{content_type}",
                        f"https://localhost:{shared_agent.tls_port}/hostagent.v1.HostAgentService/GetHostInfo?" + q],
                       capture_output=True, text=True, timeout=30)
    assert p.stdout == "200 application/proto", p.stdout + p.stderr


def test_connect_get_refused_for_methods_with_side_effects(shared_agent):
    q = urllib.parse.urlencode({"encoding": "json", "message": "{}"})
    code, body = curl(shared_agent, "/hostagent.v1.HostAgentService/CreateSandbox?" + q)
    assert code == 405
    assert json.loads(body)["code"] == "unimplemented"


def test_connect_json_errors(shared_agent):
    code, body = curl(shared_agent, "/hostagent.test.v1.TestService/Echo", "-H", "content-type: application/json",
                      "-d", '{"nope":1}')
    err = json.loads(body)
    assert code == 400 and err["code"] == "invalid_argument" and '"nope"' in err["message"]
    code, body = curl(shared_agent, "/hostagent.test.v1.TestService/Echo", "-H", "content-type: application/json",
                      "-H", "connect-protocol-version: 2", "-d", "{}")
    assert code == 400 and "connect-protocol-version" in json.loads(body)["message"]
    code, body = curl(shared_agent, "/no.Such/Method", "-H", "content-type: application/json", "-d", "{}")
    assert code == 404 and json.loads(body)["code"] == "unimplemented"
    code, body = curl(shared_agent, "/hostagent.test.v1.TestService/Echo", "-H", "content-type: text/xml", "-d", "x")
    assert code == 415


def test_connect_unary_gzip_and_trailer_headers(shared_agent, stubs):
    import gzip
    from hostagent.test.v1 import test_pb2
    c = h2c(shared_agent)
    body = gzip.compress(test_pb2.EchoRequest(message="g" * 5000, echo_metadata=True).SerializeToString())
    sid = c.request("/hostagent.test.v1.TestService/Echo",
                    [("content-type", "application/proto"), ("content-encoding", "gzip"),
                     ("accept-encoding", "gzip"), ("x-k", "v")], body)
    r = c.wait(sid)
    c.close()
    assert r.status == 200
    assert r.headers.get("content-encoding") == "gzip"
    assert r.headers.get("x-k") == "v" and r.headers.get("trailer-x-k") == "v"
    assert test_pb2.EchoResponse.FromString(gzip.decompress(r.data)).message == "g" * 5000


def test_connect_streaming_end_stream_message(shared_agent, stubs):
    from hostagent.test.v1 import test_pb2
    c = h2c(shared_agent)
    sid = c.request("/hostagent.test.v1.TestService/Echo", [("content-type", "application/connect+json")],
                    envelope(b"{}"))
    r = c.wait(sid)
    # A unary method over the streaming content type is refused in the end-stream message.
    (flags, payload), = r.messages()
    assert r.status == 200 and flags == 2
    assert json.loads(payload)["error"]["code"] == "unimplemented"
    sid = c.request("/hostagent.test.v1.TestService/ServerStream", [("content-type", "application/connect+json")],
                    envelope(json.dumps({"count": 3}).encode()))
    r = c.wait(sid)
    c.close()
    msgs = r.messages()
    assert [f for f, _ in msgs] == [0, 0, 0, 2]
    assert [json.loads(p).get("seq", 0) for _, p in msgs[:3]] == [0, 1, 2]
    assert json.loads(msgs[3][1]) == {}


def test_grpc_web_text_split_base64(shared_agent, stubs):
    from hostagent.test.v1 import test_pb2
    c = h2c(shared_agent)
    raw = envelope(test_pb2.EchoRequest(message="text mode").SerializeToString())
    b64 = base64.b64encode(raw)
    sid = c.request("/hostagent.test.v1.TestService/Echo",
                    [("content-type", "application/grpc-web-text"), ("x-grpc-web", "1")], b64, split=3)
    r = c.wait(sid)
    c.close()
    data = base64.b64decode(r.data) if b"=" not in r.data.rstrip(b"=") else b"".join(
        base64.b64decode(p + b"=" * (-len(p) % 4)) for p in r.data.split(b"=") if p)
    msgs = []
    while data:
        n = int.from_bytes(data[1:5], "big")
        msgs.append((data[0], data[5:5 + n]))
        data = data[5 + n:]
    assert msgs[0][0] == 0 and test_pb2.EchoResponse.FromString(msgs[0][1]).message == "text mode"
    assert msgs[-1][0] == 0x80 and b"grpc-status:0" in msgs[-1][1]


def test_grpc_json_content_type(shared_agent):
    c = h2c(shared_agent)
    sid = c.request("/hostagent.test.v1.TestService/Echo", [("content-type", "application/grpc+json")],
                    envelope(b'{"message":"json over grpc"}'))
    r = c.wait(sid)
    c.close()
    (_, payload), = r.messages()
    assert r.trailers["grpc-status"] == "0"
    assert json.loads(payload) == {"message": "json over grpc"}


def test_cors_preflight(certs, tmp_path):
    from conftest import check_clean_exit, start_agent
    agent = start_agent(certs, str(tmp_path / "a"), extra=["--cors-origins", "https://app.example"])
    try:
        c = h2c(agent)
        sid = c.request("/hostagent.v1.HostAgentService/GetHostInfo",
                        [("origin", "https://app.example"), ("access-control-request-method", "POST")],
                        method="OPTIONS")
        r = c.wait(sid)
        assert r.status == 204
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-grpc-web" in r.headers["access-control-allow-headers"]
        sid = c.request("/hostagent.v1.HostAgentService/GetHostInfo", [("origin", "https://evil.example")],
                        method="OPTIONS")
        assert c.wait(sid).status == 403
        sid = c.request("/hostagent.v1.HostAgentService/GetHostInfo",
                        [("origin", "https://app.example"), ("content-type", "application/grpc-web+proto")],
                        envelope(b""))
        r = c.wait(sid)
        assert "grpc-status" in r.headers["access-control-expose-headers"]
        c.close()
    finally:
        check_clean_exit(agent)


ERRORS = [(3, "invalid_argument", 400), (5, "not_found", 404), (6, "already_exists", 409),
          (7, "permission_denied", 403), (8, "resource_exhausted", 429), (9, "failed_precondition", 400),
          (12, "unimplemented", 501), (13, "internal", 500), (14, "unavailable", 503), (4, "deadline_exceeded", 504)]


@pytest.mark.parametrize("code,name,http", ERRORS)
def test_same_error_across_protocols(shared_agent, stubs, code, name, http):
    from hostagent.test.v1 import test_pb2
    msg = f"error {name}: ünïcode & 100%"
    req = test_pb2.EchoRequest(fail_code=code, fail_message=msg).SerializeToString()
    c = h2c(shared_agent)
    s1 = c.request("/hostagent.test.v1.TestService/Echo", [("content-type", "application/grpc")], envelope(req))
    s2 = c.request("/hostagent.test.v1.TestService/Echo", [("content-type", "application/grpc-web+proto")], envelope(req))
    s3 = c.request("/hostagent.test.v1.TestService/Echo", [("content-type", "application/proto")], req)
    s4 = c.request("/hostagent.test.v1.TestService/ServerStream", [("content-type", "application/connect+proto")],
                   envelope(test_pb2.StreamRequest(count=0).SerializeToString()))
    g, w, u = c.wait(s1), c.wait(s2), c.wait(s3)
    c.wait(s4)
    c.close()
    assert g.headers["grpc-status"] == str(code)
    assert urllib.parse.unquote(g.headers["grpc-message"]) == msg
    assert w.headers["grpc-status"] == str(code)
    assert urllib.parse.unquote(w.headers["grpc-message"]) == msg
    assert u.status == http
    body = json.loads(u.data)
    assert body["code"] == name and body["message"] == msg
    # The same detail in both forms: Connect's JSON list and gRPC's Status.
    from google.rpc import status_pb2
    (detail,) = body["details"]
    assert detail["type"] == "hostagent.test.v1.EchoResponse"
    d = test_pb2.EchoResponse.FromString(base64.b64decode(detail["value"] + "=" * (-len(detail["value"]) % 4)))
    assert d.message == msg and d.seq == code
    for r in (g, w):
        b = r.headers["grpc-status-details-bin"]
        st = status_pb2.Status.FromString(base64.b64decode(b + "=" * (-len(b) % 4)))
        assert st.code == code and st.message == msg
        assert st.details[0].type_url == "type.googleapis.com/hostagent.test.v1.EchoResponse"
        assert test_pb2.EchoResponse.FromString(st.details[0].value) == d


def test_connect_version_required_when_configured_and_h2c_on_unix_socket(certs, tmp_path):
    from conftest import check_clean_exit, start_agent
    import h2raw
    sock = str(tmp_path / "h2c.sock")
    agent = start_agent(certs, str(tmp_path / "a"), h2c=False,
                        extra=["--connect-require-version", "--h2c-listen", "unix:" + sock])
    try:
        import stat
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600   # owner only, set before listen()
        s = socket_unix(sock)
        c = h2raw.Conn.__new__(h2raw.Conn)
        import h2.config, h2.connection
        c.sock = s
        c.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        c.h2.initiate_connection()
        c.flush()
        c.responses = {}
        sid = c.request("/hostagent.v1.HostAgentService/GetHostInfo", [("content-type", "application/json")], b"{}")
        r = c.wait(sid)
        assert r.status == 400 and "connect-protocol-version" in json.loads(r.data)["message"]
        sid = c.request("/hostagent.v1.HostAgentService/GetHostInfo",
                        [("content-type", "application/json"), ("connect-protocol-version", "1")], b"{}")
        r = c.wait(sid)
        assert r.status == 200 and json.loads(r.data)["version"]
        c.close()
    finally:
        check_clean_exit(agent)
    assert not os.path.exists(sock)


def socket_unix(path):
    import socket as so
    s = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    s.connect(path)
    return s
