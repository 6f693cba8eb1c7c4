#!/usr/bin/env bash
# Builds CoreDNS from the github.com/coredns/coredns Go module at a pinned release
# (static, CGO_ENABLED=0, the default plugin set, which includes `kubernetes`).
# The binary is cached outside the repo, keyed by version; a present cache is reused.
# It is built in a temporary folder beside the cache and renamed into place, so an
# interrupted build never leaves a half-written binary behind.
#
# CoreDNS's go.mod has no replace directives, so `go install module@version` builds
# exactly the release's dependency set; no wrapper module is needed.
#
# usage: build-coredns.sh VERSION CACHE_DIR      (VERSION like v1.15.0)
set -euo pipefail
version=${1:?usage: build-coredns.sh VERSION CACHE_DIR}
cache=${2:?usage: build-coredns.sh VERSION CACHE_DIR}
case "$version" in
  v[0-9]*.[0-9]*.[0-9]*) ;;
  *) echo "build-coredns.sh: \"$version\" is not a CoreDNS release tag; expected vX.Y.Z (see \`go list -m -versions github.com/coredns/coredns\`)" >&2; exit 2 ;;
esac
out="$cache/coredns-$version"
bin="$out/coredns"

if [ -x "$bin" ]; then
  echo "coredns $version: cached in $out"
  exit 0
fi

command -v go >/dev/null || {
  echo "Go (>= 1.21, which fetches the toolchain CoreDNS $version asks for from the Go module proxy) is needed to build CoreDNS $version: install it and run ./setup again" >&2
  exit 1
}

mkdir -p "$cache"
# Beside the cache (same file system), so the final mv is an atomic rename.
work=$(mktemp -d "$cache/.coredns-$version.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "building coredns $version (a few minutes on 2 cores the first time) ..."
started=$(date +%s)
# Run outside any module so the checkout's files cannot influence the build.
(
  cd "$work"
  CGO_ENABLED=0 GOBIN="$work/bin" go install -trimpath -tags grpcnotrace \
    -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$version" \
    "github.com/coredns/coredns@$version" >"$work/build.log" 2>&1
) || {
  grep -v '^go: downloading' "$work/build.log" | tail -n 40 >&2
  echo "building coredns $version failed (go output above); check the network to the Go module proxy (GOPROXY) and that the version exists" >&2
  exit 1
}

[ -x "$work/bin/coredns" ] || { echo "go install produced no coredns binary in $work/bin" >&2; exit 1; }
"$work/bin/coredns" -version >/dev/null || { echo "the built coredns does not run" >&2; exit 1; }
mkdir -p "$out"
mv -f "$work/bin/coredns" "$bin"
echo "coredns $version: built into $out in $(( $(date +%s) - started )) s"
