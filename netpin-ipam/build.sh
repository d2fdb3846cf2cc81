#!/usr/bin/env bash
# Builds a static netpin-ipam binary (no cgo, so it runs on any node's libc)
# at the path given as the first argument. GOOS/GOARCH from the environment
# cross-compile, e.g. GOARCH=arm64 netpin-ipam/build.sh out/netpin-ipam-arm64.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 <output path>" >&2
  exit 2
fi
out=$1
[[ $out == /* ]] || out="$PWD/$out"

cd "$(dirname "${BASH_SOURCE[0]}")"
# -mod=mod lets a fresh machine fetch the modules go.sum pins.
CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--mod=mod}" go build -trimpath -ldflags "-s -w" -o "$out" .
echo "built $out"
