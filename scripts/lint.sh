#!/usr/bin/env bash
# Static analysis gate: clang-tidy 14 with the checks of .clang-tidy over our
# C sources (src/, guest/, tools/fcsim/; not gen/, not tests/), one process per
# file, in parallel. Prints every finding and exits 1 if there is any; 0 when
# there are none. The ctest test lint/static runs it on its build's database.
#
#   scripts/lint.sh [BUILD_DIR [FILE...]]   (default build/, configured if needed)
#   HA_LINT_JOBS=N scripts/lint.sh          (default: nproc, at most 2 in ctest)
#
# How to read a finding and how to silence a justified one: docs/CONTRIBUTING.md.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bdir=$(realpath -m "${1:-$top/build}")
shift $(($# > 0 ? 1 : 0))
jobs=${HA_LINT_JOBS:-$(nproc)}

tidy=$(command -v clang-tidy-14 || command -v clang-tidy || true)
if [ -z "$tidy" ]; then
  echo "lint: clang-tidy not found (scripts/install-deps.sh installs it)" >&2
  exit 2
fi
if [ ! -f "$bdir/compile_commands.json" ]; then
  cmake -S "$top" -B "$bdir" >/dev/null
fi

# Our files as the build compiles them (a file built twice, e.g. src/exec/frame.c
# in the guest too, is checked once).
if (($#)); then
  files=("$@")
else
  mapfile -t files < <(/usr/bin/python3 - "$bdir/compile_commands.json" "$top" <<'EOF'
import json, os, sys
top = os.path.realpath(sys.argv[2]) + "/"
seen = set()
for e in json.load(open(sys.argv[1])):
    f = os.path.realpath(os.path.join(e["directory"], e["file"]))
    rel = f[len(top):] if f.startswith(top) else ""
    if rel.startswith(("src/", "guest/", "tools/fcsim/")) and f not in seen:
        seen.add(f)
        print(f)
EOF
)
fi
if ((${#files[@]} == 0)); then
  echo "lint: no sources found in $bdir/compile_commands.json" >&2
  exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# One output file per source, so parallel runs do not interleave.
check() {
  local out="$tmp/$(echo "$1" | tr / _)"
  "$tidy" -p "$bdir" --config-file="$top/.clang-tidy" --quiet "$1" >"$out" 2>&1 || echo "$1" >>"$out.failed"
}
export -f check
export tidy bdir tmp top
printf '%s\n' "${files[@]}" | xargs -P "$jobs" -I{} bash -c 'check "$1"' _ {}

# A header's finding shows up once per file including it: count it once.
findings=$(cat "$tmp"/* 2>/dev/null | grep -a -E ': (warning|error): ' | sort -u || true)
failed=$(cat "$tmp"/*.failed 2>/dev/null || true)
if [ -n "$findings" ] || [ -n "$failed" ]; then
  for f in "$tmp"/*; do
    case $f in *.failed) continue ;; esac
    grep -a -v -E '^[0-9]+ (warning|error)s? generated\.$' "$f" || true
  done
  n=$(printf '%s' "$findings" | grep -c . || true)
  echo "lint: $n finding(s) in ${#files[@]} files${failed:+; clang-tidy failed on: $(echo $failed)}" >&2
  exit 1
fi
echo "lint: ${#files[@]} files, no findings ($("$tidy" --version | grep -o 'version [0-9.]*'))"
