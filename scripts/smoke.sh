#!/usr/bin/env bash
# Smoke test against a running agent (scripts/dev.sh): creates a sandbox,
# runs `uname -a`, streams a command that prints a line every 100 ms (each
# line shows up as it is printed), and destroys the sandbox. Uses buf curl
# with server reflection only: no .proto files needed.
#
#   scripts/smoke.sh [https://HOST:PORT]     (default https://127.0.0.1:7443)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
url=${1:-https://127.0.0.1:7443}
buf="$top/tests/clients/node_modules/.bin/buf"
certs=${HA_CERTS:-$top/certs}
svc="$url/hostagent.v1.HostAgentService"
call() {
  "$buf" curl --cacert "$certs/ca.pem" --cert "$certs/admin.pem" --key "$certs/admin.key" \
    "$svc/$1" -d "$2"
}
id="smoke-$$"
echo "== CreateSandbox $id"
call CreateSandbox "{\"sandboxId\":\"$id\",\"image\":\"base\",\"timeoutSeconds\":120}"
trap 'echo "== DestroySandbox $id"; call DestroySandbox "{\"sandboxId\":\"$id\"}"' EXIT
echo "== Exec uname -a"
call Exec "{\"sandboxId\":\"$id\",\"command\":[\"uname\",\"-a\"]}" |
  /usr/bin/python3 -c 'import sys,json,base64; r=json.load(sys.stdin); print(base64.b64decode(r.get("stdout","")).decode(), end=""); print("exit", r.get("exitCode",0))'
echo "== ExecStream: a line every 100 ms"
call ExecStream "{\"sandboxId\":\"$id\",\"command\":[\"sh\",\"-c\",\"for i in 1 2 3 4 5 6 7 8 9 10; do echo tick \$i; sleep 0.1; done\"]}" |
  /usr/bin/python3 -u -c '
import sys, json, base64, time
t0 = time.monotonic(); buf = ""
for line in sys.stdin:
    buf += line
    if line.rstrip() != "}":
        continue
    ev = json.loads(buf); buf = ""
    ms = (time.monotonic() - t0) * 1000
    if "stdout" in ev:
        print("%6.0f ms  %s" % (ms, base64.b64decode(ev["stdout"].get("data", "")).decode().rstrip()))
    elif "exited" in ev:
        print("%6.0f ms  exited %s" % (ms, ev["exited"].get("exitCode", 0)))
'
