#!/usr/bin/env bash
# Provides the Go toolchain the builds of ./setup need and prints the folder holding its
# `go` (the one line on stdout; messages go to stderr). The machine's Go is kept when it is
# at least the pinned release's minor (go1.26.11 → go1.26.0: the go line the pinned
# Kubernetes, CoreDNS and Helm modules ask for). Otherwise — no Go, or an older one such as
# Debian 12's 1.19 — it fetches the pinned release from the Go module proxy as the module
# golang.org/toolchain@v0.0.1-VERSION.linux-ARCH (a plain HTTPS GET of its .zip, so no Go is
# needed to get Go), checks the zip's SHA-256 against the pin, and unpacks it into
# CACHE_DIR/go-VERSION. It unpacks beside the cache and renames into place, so an
# interrupted run never leaves a half toolchain behind; a present one is reused.
#
# usage: go-toolchain.sh VERSION SHA256 CACHE_DIR
#   VERSION  a Go release, "go1.26.11"
#   SHA256   the SHA-256 of golang.org/toolchain@v0.0.1-VERSION.linux-amd64.zip (package.json pins both)
# env: GOPROXY (its first URL is used; default https://proxy.golang.org), ISTHMUS_FORCE_GO=1
#   to ignore the machine's Go
set -euo pipefail
usage='usage: go-toolchain.sh VERSION SHA256 CACHE_DIR'
version=${1:?$usage}
sha=${2:?$usage}
cache=${3:?$usage}
say() { echo "$*" >&2; }

[[ "$version" =~ ^go1\.([0-9]+)\.([0-9]+)$ ]] || { say "go-toolchain: \"$version\" is not a Go release like go1.26.11: fix the \"go\" pin in package.json"; exit 2; }
[[ "$sha" =~ ^[0-9a-f]{64}$ ]] || { say "go-toolchain: \"$sha\" is not a SHA-256 (64 hex digits): fix the \"go-sha256\" pin in package.json"; exit 2; }
[[ "$version" =~ ^go1\.([0-9]+)\. ]]
want_minor=${BASH_REMATCH[1]}

# The machine's Go, when its minor is at least ours (GOTOOLCHAIN=local: report itself, never switch).
if [ "${ISTHMUS_FORCE_GO:-}" != 1 ] && command -v go >/dev/null; then
  have=$(cd / && GOTOOLCHAIN=local go env GOVERSION 2>/dev/null || go version 2>/dev/null | awk '{print $3}' || true)
  if [[ "$have" =~ ^go1\.([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge "$want_minor" ]; then
    say "the machine's Go ($have at $(command -v go)) is new enough (>= go1.$want_minor)"
    dirname "$(readlink -f "$(command -v go)")"
    exit 0
  fi
  say "the machine's Go is ${have:-of unknown version} at $(command -v go); the builds need go1.$want_minor: using $version from the Go module proxy"
fi

out="$cache/go-${version#go}"
if [ -x "$out/bin/go" ] && "$out/bin/go" version >/dev/null 2>&1; then
  say "Go $version: cached in $out"
  echo "$out/bin"
  exit 0
fi

# the pinned SHA-256 is the linux-amd64 zip's
[ "$(uname -m)" = x86_64 ] || { say "go-toolchain: only the linux-amd64 toolchain is pinned: install Go >= go1.$want_minor for $(uname -m) and run ./setup again"; exit 1; }
arch=amd64
proxy=https://proxy.golang.org
IFS=',|' read -r -a proxies <<< "${GOPROXY:-}"
for p in "${proxies[@]}"; do
  case "$p" in direct|off|'') ;; *) proxy=${p%/}; break ;; esac
done
mod="golang.org/toolchain@v0.0.1-$version.linux-$arch"
url="$proxy/golang.org/toolchain/@v/v0.0.1-$version.linux-$arch.zip"

mkdir -p "$cache"
work=$(mktemp -d "$cache/.go-$version.XXXXXX")
trap 'rm -rf "$work"' EXIT
say "fetching $mod from $proxy ..."
started=$(date +%s)
code=$(curl -sSL --retry 3 -o "$work/go.zip" -w '%{http_code}' "$url" || true)
if [ "$code" != 200 ]; then
  say "go-toolchain: the Go module proxy answered HTTP ${code:-nothing} for $url: check the \"go\" pin in package.json (a released Go) and the network to the proxy (GOPROXY)"
  exit 1
fi
got=$(sha256sum "$work/go.zip" | cut -d' ' -f1)
if [ "$got" != "$sha" ]; then
  say "go-toolchain: $mod has SHA-256 $got, not the pinned $sha: nothing was installed; if you changed the \"go\" pin, pin its SHA-256 too (\"go-sha256\" in package.json)"
  exit 1
fi
command -v unzip >/dev/null || { say "go-toolchain: unzip is needed (apt-get install unzip)"; exit 1; }
unzip -q "$work/go.zip" -d "$work/x"
root="$work/x/$mod"
[ -f "$root/bin/go" ] || { say "go-toolchain: $mod holds no bin/go"; exit 1; }
# module zips keep no file modes: the programs become executable again, as go's own toolchain switch does
chmod 0755 "$root"/bin/* "$root"/pkg/tool/*/*
"$root/bin/go" version >/dev/null || { say "go-toolchain: the fetched go does not run on this machine"; exit 1; }
rm -rf "$out"
mv "$root" "$out"
say "Go $version: fetched into $out in $(( $(date +%s) - started )) s"
echo "$out/bin"
