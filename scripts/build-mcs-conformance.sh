#!/usr/bin/env bash
# Builds the upstream MCS API conformance suite (sigs.k8s.io/mcs-api/conformance, a Ginkgo
# test binary; a test tool, not project code) from its source kept beside the checkout,
# into CACHE_DIR/mcs-conformance-VERSION/mcs-conformance.test, keyed by version; a present
# cache is reused. test/mcs-conformance.test.ts runs it against the sandbox.
#
# The module proxy does not serve this nested module, so its source comes from SOURCE_DIR
# (../shared/mcs-conformance, whose UPSTREAM.md names the tag); its dependencies come from
# the module proxy. The source folder may be read-only and `-mod=mod` may write go.sum, so
# the build runs on a copy in a temporary folder beside the cache, and the binary is renamed
# into place: an interrupted build never leaves a half-written binary behind.
#
# usage: build-mcs-conformance.sh VERSION CACHE_DIR SOURCE_DIR    (VERSION like v0.5.0)
set -euo pipefail
usage="usage: build-mcs-conformance.sh VERSION CACHE_DIR SOURCE_DIR"
version=${1:?$usage}
cache=${2:?$usage}
src=${3:?$usage}
case "$version" in
  v[0-9]*.[0-9]*.[0-9]*) ;;
  *) echo "build-mcs-conformance.sh: \"$version\" is not a conformance release tag; expected vX.Y.Z (the conformance/vX.Y.Z tag of kubernetes-sigs/mcs-api)" >&2; exit 2 ;;
esac
out="$cache/mcs-conformance-$version"
bin="$out/mcs-conformance.test"

if [ -x "$bin" ]; then
  echo "mcs-conformance $version: cached in $out"
  exit 0
fi

[ -f "$src/go.mod" ] || {
  echo "the MCS conformance suite's source is not in $src (expected ../shared/mcs-conformance beside the checkout, see its UPSTREAM.md); put it there and run ./setup again" >&2
  exit 1
}
grep -q "conformance/$version" "$src/UPSTREAM.md" 2>/dev/null || {
  echo "$src/UPSTREAM.md does not name the tag conformance/$version pinned in package.json (\"isthmus\"[\"mcs-conformance\"]); use the source of that tag or change the pin" >&2
  exit 1
}
command -v go >/dev/null || {
  echo "Go (>= 1.23) is needed to build the MCS conformance suite $version: install it and run ./setup again" >&2
  exit 1
}

mkdir -p "$cache"
work=$(mktemp -d "$cache/.mcs-conformance-$version.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -R "$src" "$work/src"
chmod -R u+w "$work/src"

echo "building mcs-conformance $version (about 2 minutes on 2 cores the first time) ..."
started=$(date +%s)
(
  cd "$work/src"
  GOFLAGS=-mod=mod CGO_ENABLED=0 go test -c -trimpath -o "$work/mcs-conformance.test" . >"$work/build.log" 2>&1
) || {
  grep -v '^go: downloading' "$work/build.log" | tail -n 40 >&2
  echo "building mcs-conformance $version failed (go output above); check the network to the Go module proxy (GOPROXY)" >&2
  exit 1
}
# it must run: list its specs without touching a cluster (in $work: it writes report.yaml and report.html)
(cd "$work" && ./mcs-conformance.test -ginkgo.dry-run -ginkgo.no-color >/dev/null 2>&1) || { echo "the built mcs-conformance.test does not run" >&2; exit 1; }
mkdir -p "$out"
mv -f "$work/mcs-conformance.test" "$bin"
echo "mcs-conformance $version: built into $out in $(( $(date +%s) - started )) s"
