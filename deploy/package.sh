#!/bin/sh
# package.sh - builds the hostagent .deb from a CMake build directory:
# `cmake --install` into a staging root (binaries in /usr), plus the systemd
# unit, an example configuration (a conffile) and the docs, then
# `dpkg-deb --build`. Runtime dependencies are the Debian packages that own
# the shared libraries the binaries link (found with ldd + dpkg -S), so they
# match the machine that built it.
#
#   deploy/package.sh BUILD_DIR OUT_DIR      -> OUT_DIR/hostagent_<version>_<arch>.deb
#
# The build directory must have hostagent, fcsim and hostagent-guest built
# (cmake --install installs every target with an install rule).
set -eu

build=${1:?usage: package.sh BUILD_DIR OUT_DIR}
out=${2:?usage: package.sh BUILD_DIR OUT_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
[ -n "$version" ] || { echo "package.sh: no project version in $build/CMakeCache.txt" >&2; exit 1; }
arch=$(dpkg --print-architecture)

stage=$(mktemp -d "${TMPDIR:-/tmp}/hostagent-pkg.XXXXXX")
chmod 0755 "$stage"     # becomes "./" in the package
trap 'rm -rf "$stage"' EXIT INT TERM

DESTDIR="$stage" cmake --install "$build" --prefix /usr >/dev/null

install -D -m 0644 "$top/deploy/systemd/hostagent.service" "$stage/lib/systemd/system/hostagent.service"
install -D -m 0600 "$top/deploy/config/hostagent.conf" "$stage/etc/hostagent/hostagent.conf"
install -d -m 0700 "$stage/etc/hostagent/tls"
doc="$stage/usr/share/doc/hostagent"
install -d "$doc"
for f in README.md docs/ARCHITECTURE.md docs/OPERATIONS.md docs/SECURITY.md docs/API.md; do
        [ -f "$top/$f" ] && install -m 0644 "$top/$f" "$doc/"
done
for d in deploy/nomad deploy/kubernetes; do
        [ -d "$top/$d" ] && { install -d "$doc/examples/$(basename "$d")"; install -m 0644 "$top/$d"/* "$doc/examples/$(basename "$d")/"; }
done

# Depends: the packages owning the libraries our binaries load.
deps=$(for b in "$stage"/usr/sbin/* "$stage"/usr/bin/*; do
        [ -f "$b" ] && ldd "$b" 2>/dev/null | awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do
        real=$(readlink -f "$lib")
        dpkg -S "$lib" 2>/dev/null || dpkg -S "$real" 2>/dev/null || true
done | cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g')

install -d "$stage/DEBIAN"
cat >"$stage/DEBIAN/control" <<CTRL
Package: hostagent
Version: $version
Architecture: $arch
Maintainer: hostagent maintainers <hostagent@localhost>
Section: admin
Priority: optional
Depends: ${deps:-libc6}
Recommends: iproute2, nftables
Suggests: firecracker
Description: per-host sandbox agent for Firecracker microVMs
 Runs untrusted code in Firecracker microVMs on behalf of a control plane,
 served over gRPC, gRPC-Web and Connect with mutual TLS. Includes fcsim, a
 Firecracker-compatible simulator for hosts without KVM.
CTRL
echo /etc/hostagent/hostagent.conf >"$stage/DEBIAN/conffiles"
cat >"$stage/DEBIAN/postinst" <<'POST'
#!/bin/sh
set -e
# Not started on install: certificates and the VMM must be configured first
# (docs/OPERATIONS.md). On upgrade a running agent is restarted; KillMode=process
# keeps its sandboxes running and the new agent re-adopts them.
if [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
        if [ "$1" = configure ] && [ -n "${2:-}" ]; then
                systemctl try-restart hostagent.service || true
        fi
fi
exit 0
POST
cat >"$stage/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
        systemctl stop hostagent.service || true
fi
exit 0
PRERM
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm"

deb="$out/hostagent_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
