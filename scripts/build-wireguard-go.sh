#!/usr/bin/env bash
# Builds wireguard-go from the golang.zx2c4.com/wireguard Go module at a pinned version
# (static, CGO_ENABLED=0). Debian 12's wireguard-go is from 2022: it lacks the UDP GSO/GRO
# and TUN offloads (2023) that let one core carry several Gbit/s, and carries a small
# fraction of the underlay here (BENCHMARKS.md). The module publishes no release tags, so
# the version is a pseudo-version (see `go list -m golang.zx2c4.com/wireguard@latest`).
#
# The binary is cached outside the repo, keyed by version; a present cache is reused. It
# is built in a temporary folder beside the cache and renamed into place, so an
# interrupted build never leaves a half-written binary behind. The module's go.mod has no
# replace directives, so `go install module@version` builds exactly its dependency set.
#
# usage: build-wireguard-go.sh VERSION CACHE_DIR
#        (VERSION like v0.0.0-20260522210424-ecfc5a8d5446; the binary lands in
#        CACHE_DIR/wireguard-go-VERSION/wireguard-go)
set -euo pipefail
version=${1:?usage: build-wireguard-go.sh VERSION CACHE_DIR}
cache=${2:?usage: build-wireguard-go.sh VERSION CACHE_DIR}
case "$version" in
  v[0-9]*.[0-9]*.[0-9]*) ;;
  *) echo "build-wireguard-go.sh: \"$version\" is not a Go module version; expected vX.Y.Z or a pseudo-version like v0.0.0-20260522210424-ecfc5a8d5446 (see \`go list -m golang.zx2c4.com/wireguard@latest\`)" >&2; exit 2 ;;
esac
out="$cache/wireguard-go-$version"
bin="$out/wireguard-go"

if [ -x "$bin" ]; then
  echo "wireguard-go $version: cached in $out"
  exit 0
fi

command -v go >/dev/null || {
  echo "Go (>= 1.21, which fetches the toolchain wireguard-go $version asks for from the Go module proxy) is needed to build wireguard-go: install it and run ./setup again" >&2
  exit 1
}

mkdir -p "$cache"
# Beside the cache (same file system), so the final mv is an atomic rename.
work=$(mktemp -d "$cache/.wireguard-go-$version.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "building wireguard-go $version ..."
started=$(date +%s)
# Run outside any module so the checkout's files cannot influence the build.
(
  cd "$work"
  CGO_ENABLED=0 GOBIN="$work/bin" go install -trimpath -ldflags "-s -w" \
    "golang.zx2c4.com/wireguard@$version" >"$work/build.log" 2>&1
) || {
  grep -v '^go: downloading' "$work/build.log" | tail -n 40 >&2
  echo "building wireguard-go $version failed (go output above); check the network to the Go module proxy (GOPROXY) and that the version exists" >&2
  exit 1
}

# `go install` names the binary after the module path's last element.
[ -x "$work/bin/wireguard" ] || { echo "go install produced no wireguard binary in $work/bin" >&2; exit 1; }
"$work/bin/wireguard" --version >/dev/null || { echo "the built wireguard-go does not run" >&2; exit 1; }
mkdir -p "$out"
mv -f "$work/bin/wireguard" "$bin"
echo "wireguard-go $version: built into $out in $(( $(date +%s) - started )) s"
