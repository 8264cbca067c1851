#!/usr/bin/env bash
# Fails when gen/ differs from what scripts/gen-proto.sh makes of proto/.
set -euo pipefail
src=${1:?source dir}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/proto" "$src/scripts" "$tmp/"
mkdir -p "$tmp/gen"
(cd "$tmp" && scripts/gen-proto.sh >/dev/null)
if ! diff -r "$src/gen" "$tmp/gen" >"$tmp/diff.txt"; then
  echo "gen/ is stale: run scripts/gen-proto.sh and commit gen/" >&2
  head -40 "$tmp/diff.txt" >&2
  exit 1
fi
echo "gen/ is fresh"
