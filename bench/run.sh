#!/bin/sh
# bench/run.sh: the one command behind docs/BENCHMARKS.md. Runs hostagent,
# hostagent-testd and the reference gRPC C++ server (bench/ref_grpc_server)
# side by side under h2load and prints a markdown table; see bench/bench.py
# for what each row measures and how answers are checked.
#   bench/run.sh [--build DIR] [--runs N] [--duration S] [--smoke] [--json FILE]
# The build dir (default: build/, or $HA_BUILD_DIR) must hold hostagent,
# tests/testd/hostagent-testd and bench/ref_grpc_server (reference rows are
# skipped when it is missing) and, for the JSON codec row,
# tests/unit/rpc/unit_rpc_test_codec_json.
exec /usr/bin/python3 "$(dirname "$0")/bench.py" "$@"
