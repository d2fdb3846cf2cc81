#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager, helm)
# from the Go tools modules next to this script, and caches the binaries outside
# the repository. Only missing binaries are built; re-running is cheap.
#
# stdout: one line per binary ("<name>: built ..." / "<name>: cached ..." /
#         "<name>: using ..."), then the bin dir on the LAST line.
# stderr: go toolchain output.
#
# Environment:
#   NETPIN_CONTROLPLANE_DIR  cache root (default: ~/.cache/netpin/controlplane/<versions>)
#   KUBEBUILDER_ASSETS       if it holds kube-apiserver and etcd, those are used
#                            (kube-controller-manager / helm too when present there).
#   NETPIN_BUILD_PARALLELISM go build -p (default 2)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Versions are read from the tools modules, so bumping a go.mod changes the cache key.
modver() { # <module dir> <module path>
	awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$here/$1/go.mod"
}
K8S_VERSION="$(modver kube k8s.io/kubernetes)"
ETCD_VERSION="$(modver etcd go.etcd.io/etcd/server/v3)"
HELM_VERSION="$(modver helm helm.sh/helm/v3)"
for v in K8S_VERSION ETCD_VERSION HELM_VERSION; do
	[[ -n "${!v}" ]] || { echo "build.sh: cannot read $v from go.mod" >&2; exit 1; }
done
# v1.36.3 -> major 1, minor 36
k8s_major="${K8S_VERSION#v}"; k8s_major="${k8s_major%%.*}"
k8s_minor="${K8S_VERSION#v*.}"; k8s_minor="${k8s_minor%%.*}"

root="${NETPIN_CONTROLPLANE_DIR:-$HOME/.cache/netpin/controlplane/${K8S_VERSION}-etcd-${ETCD_VERSION}-helm-${HELM_VERSION}}"
bin="$root/bin"
mkdir -p "$bin"

# Serialise concurrent invocations (e.g. parallel test workers).
exec 9>"$root/.build.lock"
flock 9

export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
par="${NETPIN_BUILD_PARALLELISM:-2}"

k8s_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION"
	k8s_ldflags+=" -X $pkg.gitMajor=$k8s_major"
	k8s_ldflags+=" -X $pkg.gitMinor=$k8s_minor"
	k8s_ldflags+=" -X $pkg.gitTreeState=clean"
done
# helm v3: offline `helm template` reports this kube version by default
# (upstream default without ldflags is v1.20.0). Match the test apiserver.
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
helm_ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$k8s_major"
helm_ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor"

have() { [[ -f "$1" && ! -L "$1" && -x "$1" ]]; }

build() { # <name> <module dir> <package> <ldflags>
	local name="$1" dir="$2" pkg="$3" ldflags="$4" out="$bin/$1"
	if have "$out"; then
		echo "$name: cached $out"
		return
	fi
	rm -f "$out"
	local tmp="$out.tmp.$$" start=$SECONDS
	(cd "$here/$dir" && nice -n 10 go build -trimpath -p "$par" -ldflags "-s -w $ldflags" -o "$tmp" "$pkg") || {
		rm -f "$tmp"
		echo "build.sh: building $name failed" >&2
		exit 1
	}
	mv -f "$tmp" "$out"
	echo "$name: built $out ($((SECONDS - start))s)"
}

rm -f "$bin"/*.tmp.* # leftovers of interrupted builds

build_one() { # <name>
	case "$1" in
	etcd) build etcd etcd go.etcd.io/etcd/server/v3 "" ;;
	kube-apiserver) build kube-apiserver kube k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags" ;;
	kube-controller-manager) build kube-controller-manager kube k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags" ;;
	helm) build helm helm helm.sh/helm/v3/cmd/helm "$helm_ldflags" ;;
	esac
}
names=(etcd kube-apiserver kube-controller-manager helm)

target="$bin"
assets="${KUBEBUILDER_ASSETS:-}"
if [[ -n "$assets" && -x "$assets/kube-apiserver" && -x "$assets/etcd" ]]; then
	# A separate dir of symlinks, so the version-keyed cache never holds foreign binaries.
	assets="$(cd "$assets" && pwd)"
	target="$root/assets-$(printf '%s' "$assets" | sha256sum | cut -c1-12)/bin"
	mkdir -p "$target"
	for name in "${names[@]}"; do
		if [[ -x "$assets/$name" ]]; then
			ln -sfn "$assets/$name" "$target/$name"
			echo "$name: using $assets/$name (KUBEBUILDER_ASSETS)"
		else
			build_one "$name"
			ln -sfn "$bin/$name" "$target/$name"
		fi
	done
else
	for name in "${names[@]}"; do build_one "$name"; done
fi

echo "$target"
