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
# shellcheck source=../build-lib.sh
source "$here/../build-lib.sh"

K8S_VERSION="$(modver kube k8s.io/kubernetes)"
ETCD_VERSION="$(modver etcd go.etcd.io/etcd/server/v3)"
HELM_VERSION="$(modver helm helm.sh/helm/v3)"
for v in K8S_VERSION ETCD_VERSION HELM_VERSION; do
	[[ -n "${!v}" ]] || { echo "build.sh: cannot read $v from go.mod" >&2; exit 1; }
done

root="${NETPIN_CONTROLPLANE_DIR:-$HOME/.cache/netpin/controlplane/${K8S_VERSION}-etcd-${ETCD_VERSION}-helm-${HELM_VERSION}}"
cache_dir "$root"

kube_flags="$(k8s_ldflags "$K8S_VERSION")"
# helm v3: offline `helm template` reports this kube version by default
# (upstream default without ldflags is v1.20.0). Match the test apiserver.
k8s_major="${K8S_VERSION#v}"; k8s_major="${k8s_major%%.*}"
k8s_minor="${K8S_VERSION#v*.}"; k8s_minor="${k8s_minor%%.*}"
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
helm_ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$k8s_major"
helm_ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor"

build_one() { # <name>
	case "$1" in
	etcd) build etcd etcd go.etcd.io/etcd/server/v3 "" ;;
	kube-apiserver) build kube-apiserver kube k8s.io/kubernetes/cmd/kube-apiserver "$kube_flags" ;;
	kube-controller-manager) build kube-controller-manager kube k8s.io/kubernetes/cmd/kube-controller-manager "$kube_flags" ;;
	helm) build helm helm helm.sh/helm/v3/cmd/helm "$helm_ldflags" ;;
	esac
}

assets="${KUBEBUILDER_ASSETS:-}"
# Prebuilt binaries count only with the two the control plane cannot do without.
[[ -n "$assets" && -x "$assets/kube-apiserver" && -x "$assets/etcd" ]] || assets=""
build_or_link "$root" "$assets" KUBEBUILDER_ASSETS etcd kube-apiserver kube-controller-manager helm

echo "$target"
