#!/usr/bin/env bash
# Builds the base sandbox image IMAGES_DIR/base.ext4 without root:
# busybox-static (Debian) + the static guest agent as /sbin/init, users
# root/user/nobody, and the empty mount points the agent and the simulator
# expect. The filesystem is made by `mkfs.ext4 -d` from a staging dir, then
# ownership is fixed inside the image with debugfs, so building as any user
# gives root-owned files. Idempotent: the image is rebuilt into a temporary
# file and renamed over the old one.
#
# Usage: scripts/build-rootfs.sh [IMAGES_DIR]      (default: <repo>/images)
# Env:   HA_BUILD_DIR  build dir holding guest/hostagent-guest (default
#                      <repo>/build; built with cmake when missing)
#        HA_ROOTFS_SIZE  image size for mkfs (default 256M; sparse)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
images=${1:-$top/images}
bdir=${HA_BUILD_DIR:-$top/build}
size=${HA_ROOTFS_SIZE:-256M}
busybox=/bin/busybox

die() { echo "build-rootfs: $*" >&2; exit 1; }

command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 missing (apt-get install e2fsprogs)"
command -v debugfs >/dev/null || die "debugfs missing (apt-get install e2fsprogs)"
[ -x "$busybox" ] || die "$busybox missing (apt-get install busybox-static)"

is_static() { ! readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter'; }
is_static "$busybox" || die "$busybox is dynamically linked: install busybox-static, not busybox"

agent=$bdir/guest/hostagent-guest
if [ ! -x "$agent" ]; then
  echo "build-rootfs: building hostagent-guest in $bdir"
  [ -f "$bdir/CMakeCache.txt" ] || cmake -S "$top" -B "$bdir" >/dev/null
  cmake --build "$bdir" --target hostagent-guest -j"$(nproc)" >/dev/null
fi
[ -x "$agent" ] || die "no guest agent at $agent"
is_static "$agent" || die "$agent is not static (a sanitizer build?): use a default build dir (HA_BUILD_DIR)"

mkdir -p "$images"
stage=$(mktemp -d "${TMPDIR:-/tmp}/ha-rootfs.XXXXXX")
tmpimg=$(mktemp "$images/.base.ext4.XXXXXX")
trap 'rm -rf "$stage"; rm -f "$tmpimg" "$stage.cmds" "$stage.err"' EXIT

# Directory tree: the agent mounts /proc /sys /dev /tmp /run; the
# simulator binds its vsock directory on /.vsock.
for d in bin sbin usr/bin usr/sbin etc proc sys dev tmp run .vsock root home/user var/tmp mnt; do
  mkdir -p "$stage/$d"
done
chmod 1777 "$stage/tmp" "$stage/var/tmp"
chmod 0700 "$stage/root"

install -m 0755 "$busybox" "$stage/bin/busybox"
# Every applet as a symlink at its usual path, except the ones that would
# replace our init (one python process: hundreds of `ln` forks are slow).
"$busybox" --list-full | /usr/bin/python3 -c '
import os, sys
root = sys.argv[1]
for applet in sys.stdin.read().split():
    if applet in ("sbin/init", "linuxrc", "bin/busybox"):
        continue
    path = os.path.join(root, applet)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.lexists(path):
        os.symlink("/bin/busybox", path)
' "$stage"

# Stripped copies: debug info stays in the build dir.
install -m 0755 "$agent" "$stage/usr/sbin/hostagent-guest"
strip --strip-debug "$stage/usr/sbin/hostagent-guest"
install -m 0755 "$stage/usr/sbin/hostagent-guest" "$stage/sbin/init"

cat > "$stage/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
cat > "$stage/etc/group" <<'GR'
root:x:0:
user:x:1000:
nogroup:x:65534:
GR
echo sandbox > "$stage/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' > "$stage/etc/hosts"
: > "$stage/etc/resolv.conf"
printf 'NAME="hostagent sandbox"\nID=hostagent\n' > "$stage/etc/os-release"

mkfs.ext4 -q -F -d "$stage" -L rootfs "$tmpimg" "$size"

# Ownership inside the image: root everywhere, user's home to 1000.
/usr/bin/python3 -c '
import os, sys
root = sys.argv[1]
out = ["sif / uid 0", "sif / gid 0"]
for d, dirs, files in os.walk(root):
    for n in dirs + files:
        p = "/" + os.path.relpath(os.path.join(d, n), root)
        out += ["sif \"%s\" uid 0" % p, "sif \"%s\" gid 0" % p]
out += ["sif /home/user uid 1000", "sif /home/user gid 1000"]
print("\n".join(out))
' "$stage" > "$stage.cmds"
debugfs -w -f "$stage.cmds" "$tmpimg" >/dev/null 2>"$stage.err" || { cat "$stage.err" >&2; die "debugfs failed"; }
if grep -v '^debugfs ' "$stage.err" | grep -q .; then
  cat "$stage.err" >&2
  die "debugfs reported errors"
fi
rm -f "$stage.err"
e2fsck -fn "$tmpimg" >/dev/null 2>&1 || die "fsck of the new image failed"

chmod 0644 "$tmpimg"
mv -f "$tmpimg" "$images/base.ext4"
echo "build-rootfs: $images/base.ext4 ($(du -h --apparent-size "$images/base.ext4" | cut -f1) sparse, $(du -h "$images/base.ext4" | cut -f1) used)"
