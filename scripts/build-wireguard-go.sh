#!/usr/bin/env bash
# Builds wireguard-go from the golang.zx2c4.com/wireguard Go module at a pinned version
# (static, CGO_ENABLED=0). Debian 12's wireguard-go is from 2022: it lacks the UDP GSO/GRO
# and TUN offloads (2023) and the socket buffers forced past net.core.rmem_max, and drops
# most of its UDP under load here (BENCHMARKS.md). The module publishes no release tags,
# so the version is a pseudo-version (see `go list -m golang.zx2c4.com/wireguard@latest`).
#
# Cached outside the repo, keyed by version (scripts/go-build-cached.sh: a present cache
# is reused, an interrupted build leaves nothing half-written); the module's go.mod has no
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
exec bash "$(dirname "$0")/go-build-cached.sh" wireguard-go "$version" "$cache" golang.zx2c4.com/wireguard --version -ldflags "-s -w"
