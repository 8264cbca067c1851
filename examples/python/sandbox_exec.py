#!/usr/bin/env python3
"""Create a sandbox, stream a command's output as it comes, destroy it.

A minimal hostagent client with grpcio over mutual TLS. Generate the stubs
once (Debian: python3-grpc-tools; pip: grpcio-tools):

    python3 -m grpc_tools.protoc -I proto --python_out=gen-py --grpc_python_out=gen-py \\
        hostagent/v1/hostagent.proto
    PYTHONPATH=gen-py python3 examples/python/sandbox_exec.py \\
        --addr localhost:7443 --certs certs -- sh -c 'for i in 1 2 3; do echo $i; sleep 1; done'

Output bytes go to this process's stdout/stderr unchanged, as each chunk
arrives; the exit status is the command's (128+N when killed by signal N).
"""
import argparse
import os
import sys
import uuid

import grpc

from hostagent.v1 import hostagent_pb2 as pb
from hostagent.v1 import hostagent_pb2_grpc as pb_grpc


def channel(addr, certs, name):
    def read(f):
        with open(os.path.join(certs, f), "rb") as fh:
            return fh.read()
    creds = grpc.ssl_channel_credentials(root_certificates=read("ca.pem"),
                                         private_key=read(name + ".key"),
                                         certificate_chain=read(name + ".pem"))
    return grpc.secure_channel(addr, creds)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", default="localhost:7443", help="agent HOST:PORT (TLS)")
    ap.add_argument("--certs", default="certs", help="directory with ca.pem and NAME.pem/NAME.key")
    ap.add_argument("--identity", default="admin", help="client certificate NAME in --certs")
    ap.add_argument("--image", default="base", help="base rootfs image")
    ap.add_argument("--id", default="", help="sandbox id (default: generated)")
    ap.add_argument("--timeout", type=int, default=300, help="sandbox TTL in seconds")
    ap.add_argument("command", nargs="+", help="argv to run in the sandbox")
    args = ap.parse_args()

    stub = pb_grpc.HostAgentServiceStub(channel(args.addr, args.certs, args.identity))
    sandbox_id = args.id or "ex-" + uuid.uuid4().hex[:12]
    sbx = stub.CreateSandbox(pb.CreateSandboxRequest(sandbox_id=sandbox_id, image=args.image,
                                                     timeout_seconds=args.timeout), timeout=120)
    print(f"# sandbox {sbx.sandbox_id} {pb.SandboxState.Name(sbx.state)} ip={sbx.ip}", file=sys.stderr)
    status = 1
    try:
        req = pb.ExecRequest(sandbox_id=sandbox_id, command=args.command)
        for ev in stub.ExecStream(req):
            kind = ev.WhichOneof("event")
            if kind == "stdout":
                sys.stdout.buffer.write(ev.stdout.data)
                sys.stdout.buffer.flush()
            elif kind == "stderr":
                sys.stderr.buffer.write(ev.stderr.data)
                sys.stderr.buffer.flush()
            elif kind == "started":
                print(f"# started pid {ev.started.pid}", file=sys.stderr)
            elif kind == "exited":
                x = ev.exited
                status = 128 + x.signal if x.signal else x.exit_code
                print(f"# exited code={x.exit_code} signal={x.signal} timed_out={x.timed_out}", file=sys.stderr)
    except grpc.RpcError as e:
        print(f"# exec failed: {e.code().name}: {e.details()}", file=sys.stderr)
    finally:
        # Always give the sandbox back; it would otherwise live until its TTL.
        stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=sandbox_id), timeout=60)
        print(f"# destroyed {sandbox_id}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
