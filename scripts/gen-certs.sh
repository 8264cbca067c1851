#!/usr/bin/env bash
# Development certificates for hostagent (never for production):
#   ca.pem/ca.key                 development CA
#   server.pem/server.key         SANs: localhost, 127.0.0.1, ::1, this host name
#   admin.pem/admin.key           client, URI SAN spiffe://hostagent.test/admin (role admin)
#   reader.pem/reader.key         client, URI SAN spiffe://hostagent.test/reader (role reader)
#   expired.pem/expired.key       client, validity ended in 2020
#   foreign.pem/foreign.key       client signed by another CA (foreign-ca.pem)
#   serveronly.pem/serveronly.key client-looking cert with serverAuth only (wrong key usage)
# Usage: scripts/gen-certs.sh [DIR]   (default certs/). Private keys are never committed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$top/certs}
mkdir -p "$dir"
cd "$dir"
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

mkca() { # name subject
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -subj "$2" -days 3650 -sha256 -out "$1.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# sign NAME CA SUBJECT EXTFILE-CONTENT [STARTDATE ENDDATE]
sign() {
  local name=$1 ca=$2 subj=$3 ext=$4 start=${5:-} end=${6:-}
  key "$name.key"
  openssl req -new -key "$name.key" -subj "$subj" -out "$work/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" > "$work/$name.ext"
  mkdir -p "$work/db-$ca"
  : > "$work/db-$ca/index.txt"
  [ -f "$work/db-$ca/serial" ] || openssl rand -hex 16 > "$work/db-$ca/serial"
  cat > "$work/$ca.cnf" <<CNF
[ca]
default_ca = d
[d]
database = $work/db-$ca/index.txt
serial = $work/db-$ca/serial
new_certs_dir = $work
default_md = sha256
policy = p
copy_extensions = none
unique_subject = no
[p]
commonName = supplied
CNF
  local dates=(-days 825)
  [ -n "$start" ] && dates=(-startdate "$start" -enddate "$end")
  openssl ca -batch -config "$work/$ca.cnf" -cert "$ca.pem" -keyfile "$ca.key" \
    -in "$work/$name.csr" -out "$name.pem" -extfile "$work/$name.ext" -notext "${dates[@]}" >/dev/null 2>&1
}

mkca ca "/CN=hostagent development CA"
mkca foreign-ca "/CN=some other CA"

host=$(hostname 2>/dev/null || echo localhost)
sign server ca "/CN=localhost" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1,DNS:$host"

client_ext() {
  echo "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectAltName=URI:spiffe://hostagent.test/$1"
}
sign admin ca "/CN=admin" "$(client_ext admin)"
sign reader ca "/CN=reader" "$(client_ext reader)"
sign expired ca "/CN=expired" "$(client_ext expired)" 20190101000000Z 20200101000000Z
sign foreign foreign-ca "/CN=foreign" "$(client_ext foreign)"
sign serveronly ca "/CN=serveronly" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=URI:spiffe://hostagent.test/serveronly"

chmod 644 ./*.pem
echo "certificates in $dir: $(ls "$dir" | tr '\n' ' ')"
