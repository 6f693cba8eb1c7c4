#!/usr/bin/env bash
# Builds CoreDNS from the github.com/coredns/coredns Go module at a pinned release
# (static, CGO_ENABLED=0, the default plugin set, which includes `kubernetes`), cached
# outside the repo, keyed by version (scripts/go-build-cached.sh: a present cache is
# reused, an interrupted build leaves nothing half-written).
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
[ -x "$cache/coredns-$version/coredns" ] || echo "(a few minutes on 2 cores the first time)"
exec bash "$(dirname "$0")/go-build-cached.sh" coredns "$version" "$cache" github.com/coredns/coredns -version \
  -tags grpcnotrace -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$version"
