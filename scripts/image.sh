#!/usr/bin/env bash
# npm run image [-- --tag <ref>] [--out <file>]: netpin's container image as an OCI image
# archive, built without a Docker engine. It holds what the Dockerfile describes: Node 24 (the
# binary of the "node" devDependency, checked against scripts/node-checksums.txt, with the glibc
# libraries it links), package.json, dist/src and the production node_modules under /app, running
# as 65532:65532, and nothing that needs a writable root; and the netpin-ipam CNI plugin
# (netpin-ipam/build.sh) at /netpin-ipam/netpin-ipam, which the chart's optional DaemonSet copies to each node. Load it with `ctr -n k8s.io images import`, `podman load` or
# `skopeo copy oci-archive:<file> docker://<registry>/netpin:<tag>`.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Node binary, checked before anything runs it (npm puts it first on PATH, so tsc and `node`
# below would): package-lock.json pins only the "node" wrapper package, whose install script fetches
# node-linux-<arch> unpinned. Its SHA-256 must be the one scripts/node-checksums.txt keeps for the
# lockfile's version and this machine's architecture.
node_bin="$(readlink -f node_modules/node/bin/node)"
node_version="$(awk '/^    "node_modules\/node": \{/ { found = 1 } found && /"version":/ { gsub(/[",]/, "", $2); print $2; exit }' package-lock.json)"
case "$(uname -m)" in
x86_64 | amd64) node_platform=linux-x64 ;;
aarch64 | arm64) node_platform=linux-arm64 ;;
*) node_platform="linux-$(uname -m)" ;;
esac
node_sum="$(awk -v v="$node_version" -v p="$node_platform" '$1 == v && $2 == p { print $3 }' scripts/node-checksums.txt)"
if [[ -z "$node_version" || -z "$node_sum" ]]; then
	echo "image.sh: scripts/node-checksums.txt has no SHA-256 for Node ${node_version:-?} $node_platform (the lockfile's \"node\"); add it as that file says" >&2
	exit 1
fi
if ! echo "$node_sum  $node_bin" | sha256sum --check --status; then
	echo "image.sh: $node_bin is not the Node $node_version $node_platform of scripts/node-checksums.txt (SHA-256 $(sha256sum "$node_bin" | cut -d' ' -f1), expected $node_sum): reinstall with npm ci, or check the package" >&2
	exit 1
fi

# The CNI IPAM plugin, a Go module of its own: its script builds a static binary (CGO_ENABLED=0).
ipam_build="netpin-ipam/build.sh"
if [[ ! -f "$ipam_build" ]]; then
	echo "image.sh: $ipam_build not found: the image carries the netpin-ipam CNI plugin, which that script builds; check out the netpin-ipam/ folder of the repository" >&2
	exit 1
fi

version="$(node -p 'require("./package.json").version')"
tag="netpin.test/netpin:$version"
out="dist/image/netpin.tar"
while [[ $# -gt 0 ]]; do
	case "$1" in
	--tag) tag="$2"; shift 2 ;;
	--out) out="$2"; shift 2 ;;
	*) echo "usage: npm run image -- [--tag <ref>] [--out <file>]" >&2; exit 2 ;;
	esac
done

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/rootfs"

npm run --silent build
(cd tools/mkimage && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$stage/mkimage" .)

# The plugin, owned by root (mkimage writes every file as 0:0), 0755: the DaemonSet runs it from
# here as `netpin-ipam install --dir /host/cni/bin --wait`, which copies it to the node.
bash "$ipam_build" "$stage/netpin-ipam"
install -D -m 0755 "$stage/netpin-ipam" "$root/netpin-ipam/netpin-ipam"

# Node (verified above), where the distroless image keeps it, and the shared libraries it links (Debian 12's, as there).
"$node_bin" -e 'if (process.versions.node.split(".")[0] !== "24") process.exit(1)' || { echo "image.sh: the node devDependency is not Node 24" >&2; exit 1; }
install -D -m 0755 "$node_bin" "$root/nodejs/bin/node"
ldd "$node_bin" | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }' | while read -r lib; do
	install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
done

# The users distroless defines, and a /tmp for Node; the chart still mounts the root read-only.
mkdir -p "$root/etc" "$root/home/nonroot" "$root/tmp"
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"

# The application: package.json carries "type": "module", which dist/ needs at run time.
mkdir -p "$root/app/dist"
cp package.json package-lock.json "$root/app/"
cp -r dist/src "$root/app/dist/src"
(cd "$root/app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error && rm package-lock.json)

mkdir -p "$(dirname "$out")"
"$stage/mkimage" -dir "$root" -tag "$tag" -out "$out" \
	-entrypoint /nodejs/bin/node -entrypoint dist/src/cli/main.js -cmd serve \
	-workdir /app -user 65532:65532 -env NODE_ENV=production -expose 8443/tcp
