#!/usr/bin/env bash
# Runs every test: builds (build/, or build-$HA_SANITIZE for sanitizer builds),
# then the Criterion unit tests through ctest, then the integration tests
# (pytest, real clients against the real daemon).
#
#   scripts/test.sh                 # everything
#   HA_SANITIZE=address scripts/test.sh   # the same under ASan+UBSan
#   scripts/test.sh -k grpc         # extra arguments go to pytest
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

san=${HA_SANITIZE:-}
bdir=build${san:+-$san}
jobs=$(nproc)

cmake -S . -B "$bdir" -DHA_SANITIZE="$san" >/dev/null
cmake --build "$bdir" -j"$jobs" >/dev/null || cmake --build "$bdir" -j1

export HA_BUILD_DIR="$top/$bdir"
if [ -n "$san" ]; then
  # The guest agent is static and cannot be sanitized: take it from a plain build.
  cmake -S . -B build >/dev/null
  cmake --build build -j"$jobs" --target hostagent-guest >/dev/null
  export HA_GUEST_BUILD_DIR="$top/build"
fi
export HA_SANITIZE="$san"
if [ "$san" = address ]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:quarantine_size_mb=64
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi

# Both suites always run; the exit status says whether either failed.
status=0
echo "== unit tests (ctest)"
(cd "$bdir" && ctest --output-on-failure -j"$jobs" --timeout 300) || status=1

echo "== integration tests (pytest)"
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration "$@" || status=1
exit $status
