#!/usr/bin/env bash
# Installs every Debian package hostagent needs to build, test and run, and the
# npm test clients into tests/clients/node_modules. Idempotent; quiet when all
# is already present. Needs root for apt-get (CI is root).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(
  # build
  build-essential cmake pkg-config clang libclang-rt-14-dev git
  # static analysis (scripts/lint.sh, ctest lint/static)
  clang-tidy
  libnghttp2-dev libssl-dev zlib1g-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
  libprotobuf-dev  # google/protobuf/*.proto for scripts/gen-proto.sh (only recommended by protoc)
  libsqlite3-dev libcurl4-openssl-dev libnl-3-dev libnl-route-3-dev libnftables-dev libcap-dev
  libcriterion-dev libcjson-dev
  # run: namespaces, NAT, images
  iproute2 nftables conntrack e2fsprogs busybox-static util-linux kmod xfsprogs
  # test clients and tools
  python3 python3-grpcio python3-grpc-tools python3-protobuf python3-h2 python3-yaml
  python3-jsonschema python3-pytest python3-prometheus-client curl nghttp2-client openssl
  procps psmisc
  # reference server for benchmarks
  libgrpc++-dev protobuf-compiler-grpc
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The machine image ships Node.js and npm; Debian's own would conflict with it.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm test clients, pinned by tests/clients/package-lock.json.
cd "$top/tests/clients"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "install-deps: npm ci (tests/clients)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
