#!/usr/bin/env bash
# Builds one Go program from its module with `go install PACKAGE@VERSION` (static:
# CGO_ENABLED=0, -trimpath) into CACHE_DIR/NAME-VERSION/NAME, and reuses a present cache.
# It builds in a temporary folder beside the cache and renames the binary into place, so
# an interrupted build never leaves a half-written binary behind. The build runs outside
# any module, so the checkout's files cannot influence it; `go install module@version`
# builds exactly the module's own dependency set (it must have no replace directives).
# Shared by build-coredns.sh and build-wireguard-go.sh, which check their version first.
#
# usage: go-build-cached.sh NAME VERSION CACHE_DIR PACKAGE VERSION_FLAG [go install flags…]
#   PACKAGE       the package path to install at VERSION (its last element names go's binary)
#   VERSION_FLAG  what the built program answers (-version, --version) to prove it runs
set -euo pipefail
name=${1:?usage: go-build-cached.sh NAME VERSION CACHE_DIR PACKAGE VERSION_FLAG [go install flags]}
version=${2:?}
cache=${3:?}
package=${4:?}
version_flag=${5:?}
shift 5
out="$cache/$name-$version"
bin="$out/$name"

if [ -x "$bin" ]; then
  echo "$name $version: cached in $out"
  exit 0
fi

command -v go >/dev/null || {
  echo "Go (>= 1.21, which fetches the toolchain $name $version asks for from the Go module proxy) is needed to build $name $version: run ./setup, which provides it (scripts/go-toolchain.sh)" >&2
  exit 1
}

mkdir -p "$cache"
# Beside the cache (same file system), so the final mv is an atomic rename.
work=$(mktemp -d "$cache/.$name-$version.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "building $name $version ..."
started=$(date +%s)
(
  cd "$work"
  CGO_ENABLED=0 GOBIN="$work/bin" go install -trimpath "$@" "$package@$version" >"$work/build.log" 2>&1
) || {
  grep -v '^go: downloading' "$work/build.log" | tail -n 40 >&2
  echo "building $name $version failed (go output above); check the network to the Go module proxy (GOPROXY) and that the version exists" >&2
  exit 1
}

built="$work/bin/${package##*/}"
[ -x "$built" ] || { echo "go install produced no ${package##*/} binary in $work/bin" >&2; exit 1; }
"$built" "$version_flag" >/dev/null || { echo "the built $name does not run" >&2; exit 1; }
mkdir -p "$out"
mv -f "$built" "$bin"
echo "$name $version: built into $out in $(( $(date +%s) - started )) s"
