#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang, straight from the
# sources they exercise (no CMake: the top-level build stays gcc-only).
#
#   tests/fuzz/build.sh [OUT_DIR]      # default: build-fuzz/ at the top
#
# Every source is compiled once with -fsanitize=fuzzer-no-link,address,
# undefined (so libFuzzer sees coverage of the code under test, not only of
# the harness); each fuzz_*.c is then linked with -fsanitize=fuzzer into
# OUT_DIR/fuzz_<name>. Objects are rebuilt only when their source is newer.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/build-fuzz}
cc=${CC_FUZZ:-clang}
mkdir -p "$out/obj"

if ! command -v "$cc" >/dev/null; then
  echo "build.sh: $cc not found (apt-get install clang)" >&2
  exit 1
fi
if [ ! -f "$top/gen/descriptor_set.c" ]; then
  (cd "$top" && scripts/gen-proto.sh)
fi

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags="-std=gnu11 -g -O1 -D_GNU_SOURCE -DHA_VERSION=\"fuzz\" -DHA_BUILD=\"fuzz\"
        -I$top/src -I$top/gen -I$top/tools/fcsim -I$top/tests/fuzz
        -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wvla $san"
# Generated code is not ours to fix: no -Werror there.
gflags="-std=gnu11 -g -O1 -D_GNU_SOURCE -I$top/gen $san"
libs="$(pkg-config --libs libnghttp2 openssl zlib libprotobuf-c) -lpthread -lm"

# The code under test. src/rpc comes whole: the protocol harness drives the
# real rpc_protocol tables, which reference the rest of the module.
srcs=("$top"/src/core/*.c "$top"/src/rpc/*.c "$top"/src/exec/frame.c "$top"/tools/fcsim/http.c)
gens=($(find "$top/gen" -name '*.c' | sort))

# Any header change rebuilds everything: struct layouts (rpc_int.h) must
# agree between objects, and a full rebuild takes a minute or two.
newest_h=$(find "$top/src" "$top/gen" "$top/tools/fcsim" "$top/tests/fuzz/common" -name '*.h' \
           -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)

objs=()
compile() { # $1 source, $2 flags
  local o="$out/obj/$(echo "${1#$top/}" | tr / _).o"
  if [ ! -f "$o" ] || [ "$1" -nt "$o" ] || [ "$newest_h" -nt "$o" ]; then
    # shellcheck disable=SC2086
    "$cc" $2 -fsanitize=fuzzer-no-link -c "$1" -o "$o"
  fi
  objs+=("$o")
}
for s in "${srcs[@]}"; do compile "$s" "$cflags"; done
for s in "${gens[@]}"; do compile "$s" "$gflags"; done
# Harness helpers shared by several targets.
hobjs=()
for s in "$top"/tests/fuzz/common/*.c; do
  o="$out/obj/fuzzcommon_$(basename "$s" .c).o"
  # shellcheck disable=SC2086
  "$cc" $cflags -fsanitize=fuzzer-no-link -c "$s" -o "$o"
  hobjs+=("$o")
done

for t in "$top"/tests/fuzz/fuzz_*.c; do
  name=$(basename "$t" .c)
  # shellcheck disable=SC2086
  "$cc" $cflags -fsanitize=fuzzer "$t" "${hobjs[@]}" "${objs[@]}" $libs -o "$out/$name"
  echo "built $out/$name"
done
