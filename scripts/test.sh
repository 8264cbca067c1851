#!/usr/bin/env bash
# Runs every test: builds (build/, or build-$HA_SANITIZE for sanitizer builds),
# then the Criterion unit tests through ctest, then the integration tests
# (pytest, real clients against the real daemon), then searches every log
# for sanitizer reports.
#
#   scripts/test.sh                         # everything
#   HA_SANITIZE=address scripts/test.sh     # the same under ASan+UBSan
#   HA_SANITIZE=thread scripts/test.sh      # the same under TSan
#   scripts/test.sh -k grpc                 # extra arguments go to pytest
#
# Environment:
#   HA_BUILD_DIR        build directory (default build/ or build-$HA_SANITIZE/)
#   HA_GUEST_BUILD_DIR  plain build for the static guest agent in sanitizer
#                       runs (default build/)
#   HA_PYTEST_PATHS     integration test files to run (default: all of
#                       tests/integration); "none" skips pytest
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

san=${HA_SANITIZE:-}
bdir=${HA_BUILD_DIR:-build${san:+-$san}}
case $bdir in /*) ;; *) bdir=$top/$bdir ;; esac
jobs=$(nproc)

cmake -S . -B "$bdir" -DHA_SANITIZE="$san" >/dev/null
cmake --build "$bdir" -j"$jobs" >/dev/null || cmake --build "$bdir" -j1

export HA_BUILD_DIR="$bdir"
if [ -n "$san" ]; then
  # The guest agent is static and cannot be sanitized: take it from a plain build.
  gdir=${HA_GUEST_BUILD_DIR:-build}
  case $gdir in /*) ;; *) gdir=$top/$gdir ;; esac
  cmake -S . -B "$gdir" -DHA_SANITIZE= >/dev/null
  cmake --build "$gdir" -j"$jobs" --target hostagent-guest >/dev/null
  export HA_GUEST_BUILD_DIR="$gdir"
fi
export HA_SANITIZE="$san"
case $san in
  address)
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1:quarantine_size_mb=64}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} ;;
  thread)
    # Reports do not stop the process; the process exits 66 at the end and
    # the log search below catches every report.
    export TSAN_OPTIONS=${TSAN_OPTIONS:-second_deadlock_stack=1} ;;
esac

# Both suites always run; the exit status says whether either failed.
status=0
echo "== unit tests (ctest)"
ctest --test-dir "$bdir" --output-on-failure -j"$jobs" --timeout 300 2>&1 \
  | tee "$bdir/ctest.log" || status=1

basetemp=$bdir/pytest-tmp
# shellcheck disable=SC2206  # a whitespace-separated list of paths
paths=(${HA_PYTEST_PATHS:-tests/integration})
if [ "${paths[*]}" != none ]; then
  echo "== integration tests (pytest: ${paths[*]})"
  /usr/bin/python3 -m pytest -q -p no:cacheprovider --basetemp="$basetemp" "${paths[@]}" "$@" \
    || status=1
fi

# Criterion prints a test's result before its sandboxed child has exited,
# and a daemon's report may land after the test that started it passed: a
# sanitizer report anywhere is a failure, wherever it was printed.
echo "== sanitizer reports"
pattern='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|WARNING: ThreadSanitizer'
logs=("$bdir/ctest.log")
[ -f "$bdir/Testing/Temporary/LastTest.log" ] && logs+=("$bdir/Testing/Temporary/LastTest.log")
if [ -d "$basetemp" ]; then
  while IFS= read -r -d '' f; do logs+=("$f"); done \
    < <(find "$basetemp" -type f -name '*.log' -print0 2>/dev/null)
fi
found=0
for f in "${logs[@]}"; do
  n=$(grep -acE "$pattern" "$f" || true)
  if [ "$n" -gt 0 ]; then
    echo "sanitizer: $n report line(s) in $f"
    grep -aE -m3 "$pattern" "$f" | sed 's/^/    /'
    found=1
  fi
done
if [ $found = 1 ]; then
  status=1
else
  echo "none (${#logs[@]} logs searched)"
fi
exit $status
