#!/usr/bin/python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ from real
messages: envelopes and bodies as grpcio, grpc-web and connect clients
send them, API JSON as the docs show it, guest frames as exec sends them,
Firecracker API requests as the driver sends them. Re-run after a protocol
change; the output is committed (a few KB)."""
import base64, gzip, os, struct, sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "gen", "py"))


def env(flags, payload):
    return struct.pack(">BI", flags, len(payload)) + payload


def pb_str(field, s):
    b = s.encode() if isinstance(s, str) else s
    return bytes([(field << 3) | 2, len(b)]) + b


def pb_varint(field, v):
    out = bytes([(field << 3)])
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


echo = pb_str(1, "hello") + pb_varint(2, 3)
seeds = {}


def add(target, name, data):
    seeds.setdefault(target, []).append((name, data))


# envelope: [slice seed][inflate bit] stream
z = gzip.compress(echo)
add("fuzz_envelope", "two", b"\x00\x01" + env(0, echo) + env(0, b""))
add("fuzz_envelope", "gzip", b"\x07\x01" + env(1, z) + env(0, echo))
add("fuzz_envelope", "connect_end", b"\x03\x00" + env(2, b'{"error":{"code":"internal"}}'))
add("fuzz_gzip", "echo", z)
add("fuzz_gzip", "plain", echo)
for v in (b"1S", b"100m", b"99999999H", b"5u", b"12n", b"0M"):
    add("fuzz_timeout", v.decode(), v)
add("fuzz_timeout", "connect", b"30000")

json_seeds = [
    (0, b'{"templateId":"base","vcpus":2,"memoryMib":512,"timeoutSeconds":60,'
        b'"env":{"A":"b"},"metadata":{"team":"x"},"egress":{"mode":"MODE_ALLOW_ALL"}}'),
    (1, b'{"sandboxId":"sbx-1","state":"SANDBOX_STATE_RUNNING","createdAt":"2026-11-28T07:00:00.123Z"}'),
    (2, b'{"sandboxId":"sbx-1","argv":["/bin/sh","-c","echo hi"],"stdin":"aGk=","timeout":"1.5s"}'),
    (10, b'{"code":3,"message":"bad","details":[{"@type":"type.googleapis.com/hostagent.v1.Sandbox","sandboxId":"x"}]}'),
    (12, b'"1970-01-01T00:00:00Z"'),
    (13, b'"-1.000000001s"'),
    (14, b'{"message":"hi","count":"3"}'),
]
for i, (t, j) in enumerate(json_seeds):
    add("fuzz_json", f"s{i}", bytes([t]) + j)
add("fuzz_json_enc", "echo", bytes([14]) + echo)
add("fuzz_json_enc", "status", bytes([10]) + pb_varint(1, 3) + pb_str(2, "bad"))

# guest frames: GuestEvent output fast path and a GuestRequest start.
out_ev = pb_str(3, pb_varint(1, 1) + pb_str(2, b"hello\n"))
add("fuzz_guest_frame", "output", b"\x05" + struct.pack(">BI", 0, len(out_ev)) + out_ev)
start = pb_str(1, pb_str(1, "/bin/echo") + pb_str(1, "hi"))
add("fuzz_guest_frame", "start", b"\x00" + struct.pack(">BI", 0, len(start)) + start + b"\x00\x00\x00")

add("fuzz_fcsim_http", "put", b"\x00PUT /machine-config HTTP/1.1\r\nHost: localhost\r\n"
    b"Content-Type: application/json\r\nContent-Length: 30\r\n\r\n{\"vcpu_count\":2,\"mem_size_mib\"}")
add("fuzz_fcsim_http", "get2", b"\x09GET / HTTP/1.1\r\n\r\nGET /machine-config HTTP/1.1\r\nExpect: 100-continue\r\n\r\n")

path = b"/hostagent.test.v1.TestService/Echo"
add("fuzz_proto_grpc", "unary", b"\x00\x0c" + path + b"\ngrpc-timeout: 5S\nte: trailers\n>x-trace: 1\n!oops\n\n" + env(0, echo))
add("fuzz_proto_grpc", "gzip", b"\x05\x00" + path + b"\ngrpc-encoding: gzip\ngrpc-accept-encoding: gzip\n\n" + env(1, z))
add("fuzz_proto_grpc_web_text", "text", b"\x03\x00" + path + b"\n>x-bin-bin: abc\n\n" + base64.b64encode(env(0, echo)))
add("fuzz_proto_grpc_web_text", "json", b"\x00\x08" + path + b"\ncontent-type: application/grpc-web-text+json\n\n"
    + base64.b64encode(env(0, b'{"message":"hi"}')))
add("fuzz_proto_connect_stream", "stream", b"\x02\x03" + path + b"\nconnect-protocol-version: 1\nconnect-timeout-ms: 1000\n"
    b">x-a: b\n!fail \"q\"\n\n" + env(0, echo) + env(0, echo))
add("fuzz_proto_connect_stream", "json", b"\x00\x02" + path + b"\ncontent-type: application/connect+json\n"
    b"connect-content-encoding: gzip\n\n" + env(1, gzip.compress(b'{"message":"x"}')))
add("fuzz_proto_connect_unary", "json", b"\x00\x00" + path + b"\nconnect-protocol-version: 1\n\n{\"message\":\"hi\"}")
add("fuzz_proto_connect_unary", "proto", b"\x04\x0c" + path + b"\ncontent-type: application/proto\n!bad\n\n" + echo)
add("fuzz_proto_connect_get", "json", b"\x00\x00" + path + b"?encoding=json&message=%7B%22message%22%3A%22hi%22%7D&connect=v1\n\n")
add("fuzz_proto_connect_get", "b64", b"\x00\x00" + path + b"?encoding=proto&base64=1&compression=gzip&message="
    + base64.urlsafe_b64encode(z).rstrip(b"=") + b"\naccept-encoding: gzip\n\n")

# h2in: [slice seed] client bytes: preface, SETTINGS, a request, an RST_STREAM
# on a stream never opened, one on an open stream, one inside a header block.
def frame(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
rst = struct.pack(">I", 8)
add("fuzz_h2in", "grpcio_cancel_race", b"\x05" + preface + frame(4, 0, 0, b"\x00\x03\x00\x00\x00\x64")
    + frame(1, 4, 1, b"\x83\x86") + frame(3, 0, 9, rst) + frame(0, 1, 1, env(0, echo)) + frame(3, 0, 1, rst))
add("fuzz_h2in", "header_block", b"\x00" + preface + frame(1, 0, 3, b"\x83") + frame(3, 0, 5, rst)
    + frame(9, 4, 3, b"\x86") + frame(3, 0, 7, rst))

for target, items in seeds.items():
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in items:
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
print("wrote", sum(len(v) for v in seeds.values()), "seeds")
