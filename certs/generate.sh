#!/usr/bin/env bash
# Makes a development CA and a serving certificate for netpin (ECDSA P-256):
#   <out>/ca.crt ca.key tls.crt tls.key
# SANs: localhost, 127.0.0.1, ::1 and the in-cluster names of <service>.<namespace>.
#
# usage: certs/generate.sh [--force] [out-dir [service [namespace]]]
#        defaults: .certs netpin netpin-system
# Existing files are kept unless --force: all four present is success (nothing to
# do), some present is an error, so a partial set is never mixed with new files.
set -euo pipefail

usage() { echo "usage: $0 [--force] [out-dir [service [namespace]]]" >&2; exit 2; }

force=0
args=()
for a in "$@"; do
	case "$a" in
		--force) force=1 ;;
		-h|--help) usage ;;
		-*) echo "$0: unknown option $a" >&2; usage ;;
		*) args+=("$a") ;;
	esac
done
(( ${#args[@]} <= 3 )) || usage
out="${args[0]:-.certs}"
svc="${args[1]:-netpin}"
ns="${args[2]:-netpin-system}"
days="${NETPIN_CERT_DAYS:-365}"

files=(ca.crt ca.key tls.crt tls.key)
present=0
for f in "${files[@]}"; do [[ -e "$out/$f" ]] && present=$((present + 1)); done
if (( force == 0 && present == ${#files[@]} )); then
	echo "$0: $out already holds ${files[*]}; keeping them (--force to replace)" >&2
	exit 0
fi
if (( force == 0 && present > 0 )); then
	echo "$0: $out holds only some of ${files[*]}; refusing to mix (--force to replace)" >&2
	exit 1
fi

command -v openssl >/dev/null || { echo "$0: openssl not found" >&2; exit 1; }
mkdir -p "$out"
# Written in a scratch directory and moved into place, so a failure leaves no half set.
tmp="$(mktemp -d "$out/.generate.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# openssl is quiet unless it fails; then its own words are shown.
ossl() { local err; err="$(openssl "$@" 2>&1)" || { echo "$0: openssl $1 failed: $err" >&2; exit 1; }; }

ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
ossl req -x509 -new "${ec[@]}" -keyout "$tmp/ca.key" -out "$tmp/ca.crt" \
	-days "$((days * 10))" -sha256 -subj "/CN=netpin development CA" \
	-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
	-addext "keyUsage=critical,keyCertSign,cRLSign"

ossl req -new "${ec[@]}" -keyout "$tmp/tls.key" -out "$tmp/tls.csr" -subj "/CN=$svc.$ns.svc"
cat >"$tmp/tls.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1,DNS:$svc,DNS:$svc.$ns,DNS:$svc.$ns.svc,DNS:$svc.$ns.svc.cluster.local
EOF
ossl x509 -req -in "$tmp/tls.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
	-set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
	-extfile "$tmp/tls.ext" -out "$tmp/tls.crt"

chmod 600 "$tmp/ca.key" "$tmp/tls.key"
for f in "${files[@]}"; do mv -f "$tmp/$f" "$out/$f"; done
echo "$0: wrote ${files[*]} to $out (SANs for $svc.$ns)" >&2
