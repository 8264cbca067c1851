#!/usr/bin/env bash
# The first of the README's two commands: installs what is missing, builds,
# makes development certificates and the guest image, then runs the agent
# in the foreground on its embedded default runtime (the simulator, fcsim,
# unless Firecracker and a usable /dev/kvm are there), ready for requests.
#
#   scripts/dev.sh [extra hostagent flags...]     Ctrl-C stops it (exit 0).
#
# Environment: HA_LISTEN (default 127.0.0.1:7443), HA_H2C (default
# 127.0.0.1:7080, cleartext for local debugging), HA_VAR (default var/).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [ "$(id -u)" = 0 ]; then
  scripts/install-deps.sh
fi
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

var=${HA_VAR:-$top/var}
mkdir -p "$var"
[ -f certs/server.pem ] && [ -f certs/admin.key ] || scripts/gen-certs.sh certs >/dev/null
[ -f "$var/images/base.ext4" ] || HA_BUILD_DIR="$top/build" scripts/build-rootfs.sh "$var/images"

runtime=(--firecracker-bin "$top/build/tools/fcsim/fcsim")
if command -v firecracker >/dev/null && [ -w /dev/kvm ] && [ -n "${HA_KERNEL:-}" ]; then
  runtime=(--firecracker-bin "$(command -v firecracker)" --kernel "$HA_KERNEL")
fi

listen=${HA_LISTEN:-127.0.0.1:7443}
h2c=${HA_H2C:-127.0.0.1:7080}
cat <<TXT
hostagent: starting on https://${listen} (mTLS, certs in certs/) and h2c://${h2c}
  try:  tests/clients/node_modules/.bin/buf curl --cacert certs/ca.pem --cert certs/admin.pem \\
          --key certs/admin.key https://${listen} --list-services
        scripts/smoke.sh
TXT
exec build/hostagent --listen "$listen" --h2c-listen "$h2c" \
  --tls-cert certs/server.pem --tls-key certs/server.key --client-ca certs/ca.pem \
  --state-dir "$var/state" --run-dir /run/hostagent --images-dir "$var/images" \
  "${runtime[@]}" "$@"
