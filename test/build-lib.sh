# Shell functions shared by test/controlplane/build.sh and test/node/build.sh: both build binaries
# from Go tools modules into a version-keyed cache outside the repository. Sourced, not run. The
# caller sets `here` (its own directory); cache_dir sets `bin` and `par`.

# A module's version from a go.mod, so that bumping a go.mod changes the cache key.
modver() { # <go.mod dir, from $here> <module path>
	awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$here/$1/go.mod"
}

# Without these, Kubernetes binaries report v0.0.0-master+$Format:%H$, which kubectl refuses to parse.
k8s_ldflags() { # <version, e.g. v1.36.3>
	local major="${1#v}" minor="${1#v*.}" flags="" pkg
	major="${major%%.*}"
	minor="${minor%%.*}"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		flags+=" -X $pkg.gitVersion=$1 -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	done
	printf '%s' "$flags"
}

# Makes <root>/bin, and holds a lock on <root> for the rest of the script: parallel test workers
# may build at once.
cache_dir() { # <root>
	bin="$1/bin"
	mkdir -p "$bin"
	exec 9>"$1/.build.lock"
	flock 9
	export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
	par="${NETPIN_BUILD_PARALLELISM:-2}"
	rm -f "$bin"/*.tmp.* # leftovers of interrupted builds
}

have() { [[ -f "$1" && ! -L "$1" && -x "$1" ]]; }

build() { # <name> <module dir> <package> <ldflags> [CGO_ENABLED] [build tags]
	local name="$1" dir="$2" pkg="$3" ldflags="$4" cgo="${5:-0}" tags="${6:-}" out="$bin/$1"
	if have "$out"; then
		echo "$name: cached $out"
		return
	fi
	rm -f "$out"
	local tmp="$out.tmp.$$" start=$SECONDS
	(cd "$here/$dir" && CGO_ENABLED="$cgo" nice -n 10 go build -trimpath -p "$par" ${tags:+-tags "$tags"} \
		-ldflags "-s -w $ldflags" -o "$tmp" "$pkg") || {
		rm -f "$tmp"
		echo "build.sh: building $name failed" >&2
		exit 1
	}
	mv -f "$tmp" "$out"
	echo "$name: built $out ($((SECONDS - start))s)"
}

# Builds each name with build_one, or links the one a directory of prebuilt binaries holds; sets
# `target` to the directory the caller prints. Links go to a directory of their own, so that the
# version-keyed cache never holds foreign binaries.
build_or_link() { # <root> <prebuilt dir, may be empty> <its variable's name> <names...>
	local root="$1" assets="$2" var="$3" name
	shift 3
	target="$bin"
	if [[ -z "$assets" ]]; then
		for name in "$@"; do build_one "$name"; done
		return
	fi
	assets="$(cd "$assets" && pwd)"
	target="$root/assets-$(printf '%s' "$assets" | sha256sum | cut -c1-12)/bin"
	mkdir -p "$target"
	for name in "$@"; do
		if [[ -x "$assets/$name" ]]; then
			ln -sfn "$assets/$name" "$target/$name"
			echo "$name: using $assets/$name ($var)"
		else
			build_one "$name"
			ln -sfn "$bin/$name" "$target/$name"
		fi
	done
}
