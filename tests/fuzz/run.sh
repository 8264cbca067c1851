#!/usr/bin/env bash
# Builds every fuzz target (build.sh), replays the committed regression
# inputs, then fuzzes each target for a bounded time.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]    # default 60 s, every target
#
# A crash (or a failed invariant, which aborts) fails the run; libFuzzer
# writes the input to tests/fuzz/regressions/<target>/ so it can be
# committed and replayed by every later run. New corpus entries go to a
# scratch dir (build-fuzz/corpus/) seeded from tests/fuzz/corpus/<target>/:
# the committed seeds stay small. Prints executions per target.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
secs=${1:-60}
shift || true
out=${HA_FUZZ_OUT:-$top/build-fuzz}

"$here/build.sh" "$out" >/dev/null

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for t in "$here"/fuzz_*.c; do targets+=("$(basename "$t" .c)"); done
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fail=0
printf '%-28s %12s %8s %s\n' target executions exec/s result
for t in "${targets[@]}"; do
  bin="$out/$t"
  reg="$here/regressions/$t"
  log="$out/$t.log"
  mkdir -p "$reg"
  # Replay: every input that ever crashed must pass now.
  if compgen -G "$reg/*" >/dev/null; then
    if ! "$bin" -runs=1 "$reg"/* >"$out/$t.replay.log" 2>&1; then
      printf '%-28s %12s %8s %s\n' "$t" - - "REGRESSION (see $out/$t.replay.log)"
      grep -m4 -E 'invariant failed|==[0-9]+== ?ERROR|runtime error:|^SUMMARY' "$out/$t.replay.log" | sed 's/^/  | /' || true
      fail=1
      continue
    fi
  fi
  work="$out/corpus/$t"
  mkdir -p "$work"
  seeds=()
  [ -d "$here/corpus/$t" ] && seeds=("$here/corpus/$t")
  rc=0
  touch "$out/$t.start"
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$reg/" "$work" "${seeds[@]}" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ $rc -ne 0 ]; then
    printf '%-28s %12s %8s %s\n' "$t" "${runs:--}" "${rate:--}" "CRASH rc=$rc (input in $reg/, log $log)"
    # CI keeps no files: print the input so it can be committed from the log
    # (base64 -d > tests/fuzz/regressions/<target>/<name>).
    find "$reg" -type f -newer "$out/$t.start" -print0 | while IFS= read -r -d '' f; do
      echo "  $f (base64):"
      base64 -w 76 "$f" | sed 's/^/    /'
    done
    grep -m4 -E 'invariant failed|==[0-9]+== ?ERROR|runtime error:|^SUMMARY' "$log" | sed 's/^/  | /' || true
    fail=1
  else
    printf '%-28s %12s %8s %s\n' "$t" "$runs" "$rate" ok
  fi
done
exit $fail
