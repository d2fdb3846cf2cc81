#!/usr/bin/env bash
# Builds the test node (kubelet, kube-scheduler, kubectl, containerd, ctr,
# containerd-shim-runc-v2, runc, the CNI reference plugins, netpin's netpin-ipam) and its OCI image archives
# from the Go tools modules next to this script, and caches them outside the repository.
# Only missing binaries are built; re-running is cheap. See
# the comments below for why each piece is built the way it is.
#
# stdout: one line per binary or image ("<name>: built ..." / "<name>: cached ..." /
#         "<name>: using ..."), then the bin dir on the LAST line. The image archives
#         are in <bin dir>/images/ (pause.tar, app.tar, refs).
# stderr: go toolchain and apt output.
#
# Environment:
#   NETPIN_NODE_DIR           cache root (default: ~/.cache/netpin/node/<versions>)
#   NETPIN_NODE_ASSETS        a dir of prebuilt binaries: each one present there is used
#                             instead of being built (e.g. a distro's runc)
#   NETPIN_BUILD_PARALLELISM  go build -p (default 2)
#
# Arguments: names of binaries (e.g. `kubectl`, for the control planes of `npm run clusterset`,
# which have no node) to build only those; the images and netpin-ipam are then left as they are.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../build-lib.sh
source "$here/../build-lib.sh"

mkimage="$here/../../tools/mkimage"
K8S_VERSION="$(modver kube k8s.io/kubernetes)"
CONTAINERD_VERSION="$(modver containerd github.com/containerd/containerd/v2)"
RUNC_VERSION="$(modver runc github.com/opencontainers/runc)"
CNI_VERSION="$(modver cni github.com/containernetworking/plugins)"
GGCR_VERSION="$(modver ../../tools/mkimage github.com/google/go-containerregistry)"
for v in K8S_VERSION CONTAINERD_VERSION RUNC_VERSION CNI_VERSION GGCR_VERSION; do
	[[ -n "${!v}" ]] || { echo "build.sh: cannot read $v from go.mod" >&2; exit 1; }
done
# The node must run the control plane's Kubernetes version (kubelet skew aside, one build cache).
cp_k8s="$(modver ../controlplane/kube k8s.io/kubernetes)"
if [[ -n "$cp_k8s" && "$cp_k8s" != "$K8S_VERSION" ]]; then
	echo "build.sh: test/node/kube is at $K8S_VERSION but test/controlplane/kube at $cp_k8s; keep them equal" >&2
	exit 1
fi

root="${NETPIN_NODE_DIR:-$HOME/.cache/netpin/node/${K8S_VERSION}-containerd-${CONTAINERD_VERSION}-runc-${RUNC_VERSION}-cni-${CNI_VERSION}}"
cache_dir "$root"

kube_flags="$(k8s_ldflags "$K8S_VERSION")"
# containerd's Makefile sets the same variable (version/version.go defaults to "X+unknown").
containerd_ldflags="-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
containerd_ldflags+=" -X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2"
cni_ldflags="-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_VERSION"

# runc links libseccomp through cgo (pkg-config libseccomp): without the seccomp tag every
# sandbox fails ("config provided but seccomp not supported"), since containerd always
# gives the sandbox a seccomp profile. Install the headers the first time.
ensure_libseccomp_dev() {
	if [[ -f /usr/include/seccomp.h ]] && pkg-config --exists libseccomp 2>/dev/null; then return; fi
	local pkgs=(libseccomp-dev)
	command -v gcc >/dev/null || pkgs+=(gcc libc6-dev)
	command -v pkg-config >/dev/null || pkgs+=(pkg-config)
	echo "build.sh: installing ${pkgs[*]} for runc (cgo + seccomp)" >&2
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "${pkgs[@]}" >&2; then
		apt-get update >&2
		apt-get install -y --no-install-recommends "${pkgs[@]}" >&2
	fi
	[[ -f /usr/include/seccomp.h ]] || { echo "build.sh: libseccomp-dev did not provide seccomp.h" >&2; exit 1; }
}

build_one() { # <name>
	case "$1" in
	kubelet | kube-scheduler | kubectl)
		build "$1" kube "k8s.io/kubernetes/cmd/$1" "$kube_flags" ;;
	containerd | ctr | containerd-shim-runc-v2)
		build "$1" containerd "github.com/containerd/containerd/v2/cmd/$1" "$containerd_ldflags" ;;
	runc)
		if ! have "$bin/runc"; then ensure_libseccomp_dev; fi
		build runc runc github.com/opencontainers/runc "" 1 seccomp ;;
	loopback | bridge) build "$1" cni "github.com/containernetworking/plugins/plugins/main/$1" "$cni_ldflags" ;;
	host-local) build "$1" cni "github.com/containernetworking/plugins/plugins/ipam/$1" "$cni_ldflags" ;;
	bandwidth) build "$1" cni "github.com/containernetworking/plugins/plugins/meta/$1" "$cni_ldflags" ;;
	esac
}
# Cheapest first, so that a broken toolchain shows up before the long Kubernetes builds.
names=(loopback bridge host-local bandwidth runc containerd-shim-runc-v2 ctr containerd kubectl kube-scheduler kubelet)
only=("$@")
for name in "${only[@]}"; do
	[[ " ${names[*]} " == *" $name "* ]] || { echo "build.sh: no binary named $name (one of: ${names[*]})" >&2; exit 1; }
done

assets="${NETPIN_NODE_ASSETS:-}"
if [[ -n "$assets" && ! -d "$assets" ]]; then
	echo "build.sh: NETPIN_NODE_ASSETS=$assets is not a directory" >&2
	exit 1
fi
if ((${#only[@]} > 0)); then
	build_or_link "$root" "$assets" NETPIN_NODE_ASSETS "${only[@]}"
	echo "$target"
	exit 0
fi
build_or_link "$root" "$assets" NETPIN_NODE_ASSETS "${names[@]}"

# Images: keyed by the content of their sources and of tools/mkimage, so editing either rebuilds them.
img_key="$(cd "$here/.." && find node/images ../tools/mkimage -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -print0 |
	LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
imgdir="$root/images/ggcr-$GGCR_VERSION-$img_key"
if [[ -f "$imgdir/pause.tar" && -f "$imgdir/app.tar" && -f "$imgdir/refs" ]]; then
	echo "images: cached $imgdir"
else
	start=$SECONDS
	rm -rf "$imgdir.tmp"
	mkdir -p "$imgdir.tmp"
	(
		cd "$here/images"
		for p in pause app; do
			CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$imgdir.tmp/$p" "./$p"
		done
		(cd "$mkimage" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$imgdir.tmp/mkimage" .)
		# The tags are local-looking names that no registry serves; kubelet must never pull them
		# (imagePullPolicy Never/IfNotPresent), and containerd's pinned sandbox image is this pause.
		# 65535 is the uid upstream's pause image runs as (kubernetes build/pause/Dockerfile).
		"$imgdir.tmp/mkimage" -file "$imgdir.tmp/pause:/pause" -entrypoint /pause -tag netpin.test/pause:1 \
			-user 65535:65535 -out "$imgdir.tmp/pause.tar" >"$imgdir.tmp/refs"
		"$imgdir.tmp/mkimage" -file "$imgdir.tmp/app:/app" -entrypoint /app -tag netpin.test/app:1 \
			-user 65534:65534 -env PORT=8080 -expose 8080/tcp -out "$imgdir.tmp/app.tar" >>"$imgdir.tmp/refs"
		rm -f "$imgdir.tmp/pause" "$imgdir.tmp/app" "$imgdir.tmp/mkimage"
	) || {
		rm -rf "$imgdir.tmp"
		echo "build.sh: building the images failed" >&2
		exit 1
	}
	rm -rf "$imgdir"
	mv "$imgdir.tmp" "$imgdir"
	echo "images: built $imgdir ($((SECONDS - start))s)"
	# Older image sets (other sources) are never used again.
	find "$root/images" -mindepth 1 -maxdepth 1 ! -name "$(basename "$imgdir")" -exec rm -rf {} +
fi
ln -sfn "$imgdir" "$target/images"

# netpin's own IPAM plugin, from netpin-ipam/ at the top of the repository: keyed by its sources like
# the images, so an edit rebuilds it. The node's conflist names it; the chart's DaemonSet installs the
# image's copy into a directory containerd searches first.
ipam_src="$here/../../netpin-ipam"
[[ -x "$ipam_src/build.sh" ]] || { echo "build.sh: $ipam_src/build.sh is missing" >&2; exit 1; }
ipam_key="$(cd "$ipam_src" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' -o -name build.sh \) -print0 |
	LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
ipam_out="$root/netpin-ipam/$ipam_key/netpin-ipam"
if have "$ipam_out"; then
	echo "netpin-ipam: cached $ipam_out"
else
	start=$SECONDS
	rm -rf "$root/netpin-ipam"
	mkdir -p "$(dirname "$ipam_out")"
	"$ipam_src/build.sh" "$ipam_out.tmp" || { rm -f "$ipam_out.tmp"; echo "build.sh: building netpin-ipam failed" >&2; exit 1; }
	mv -f "$ipam_out.tmp" "$ipam_out"
	echo "netpin-ipam: built $ipam_out ($((SECONDS - start))s)"
fi
ln -sfn "$ipam_out" "$target/netpin-ipam"

echo "$target"
