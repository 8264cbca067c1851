#!/bin/sh
# bench/run.sh: the one command behind docs/BENCHMARKS.md (driver:
# bench/suite.py). Runs the RPC part (bench/bench.py: hostagent against the
# reference gRPC C++ server under h2load) and the exec and lifecycle parts
# (bench/sandbox.py: the agent with the fcsim simulator, as root), each next
# to its reference in the same run, and writes docs/BENCHMARKS.md from
# bench/BENCHMARKS.md.in.
#   bench/run.sh [--build DIR] [--runs N] [--duration S] [--creates N]
#                [--fs host,xfs] [--concurrency 1,8,32] [--only rpc,exec,lifecycle]
#                [--smoke] [--json FILE] [--from-json FILE[,FILE...]] [--out FILE]
# The build dir (default: build/, or $HA_BUILD_DIR) must hold hostagent,
# tests/testd/hostagent-testd, tools/fcsim/fcsim, guest/hostagent-guest and
# bench/ref_grpc_server (reference rows are skipped when it is missing); for a
# sanitizer build, HA_GUEST_BUILD_DIR names a plain build for the static guest.
exec /usr/bin/python3 "$(dirname "$0")/suite.py" "$@"
