#!/usr/bin/python3
"""A fake Firecracker that hangs on its API, for the fault-injection tests.

The agent runs it exactly as it runs firecracker (`--api-sock PATH ...`, an
environment of PATH only), so the mode comes from the name it is run by
(the tests make symlinks to this file):
  *hang-all*    accepts on the API socket, reads requests, never answers
  *hang-start*  answers every request 204 No Content except
                PUT /actions (InstanceStart), which it never answers
`--version` prints a banner that is not fcsim's (so the agent treats it as
a real Firecracker). It runs until it is killed; the test checks the agent
killed it.
"""
import os
import socket
import sys
import threading


def serve(conn, hang_all):
    buf = b""
    with conn:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\r\n\r\n" in buf:
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip() or b"0")
                if len(rest) < length:
                    break
                buf = rest[length:]
                request_line = head.split(b"\r\n")[0]
                if hang_all or request_line.startswith(b"PUT /actions"):
                    continue        # never answered: the client must time out
                conn.sendall(b"HTTP/1.1 204 No Content\r\nServer: hang_vmm\r\n\r\n")


def main():
    args = sys.argv[1:]
    if "--version" in args:
        print("hang_vmm (fake Firecracker for tests)")
        return 0
    sock_path = args[args.index("--api-sock") + 1]
    hang_all = "hang-all" in os.path.basename(sys.argv[0])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(sock_path)
    s.listen(16)
    print(f"hang_vmm: listening on {sock_path} ({'hang-all' if hang_all else 'hang-start'})", flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn, hang_all), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
