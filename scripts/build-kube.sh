#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-proxy and kubectl from the
# k8s.io/kubernetes Go module at a pinned release, through a wrapper module that
# replaces every k8s.io/<staging> module with its matching v0.Y.Z release.
# Binaries are cached outside the repo, keyed by version; a present cache is reused.
#
# usage: build-kube.sh VERSION CACHE_DIR
set -euo pipefail
version=${1:?usage: build-kube.sh VERSION CACHE_DIR}
cache=${2:?usage: build-kube.sh VERSION CACHE_DIR}
out="$cache/kubernetes-$version"
bins=(kube-apiserver kube-controller-manager kube-proxy kubectl)

missing=()
for b in "${bins[@]}"; do [ -x "$out/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "kubernetes $version: cached in $out"
  exit 0
fi

command -v go >/dev/null || { echo "Go (>= 1.21, which fetches the toolchain Kubernetes $version asks for from the Go module proxy) is needed to build Kubernetes $version: run ./setup, which provides it (scripts/go-toolchain.sh)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

staging_version="v0.${version#v1.}"
go mod download -json "k8s.io/kubernetes@$version" > dl.json
gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' dl.json)
[ -f "$gomod" ] || { echo "could not download k8s.io/kubernetes@$version" >&2; exit 1; }
goline=$(grep -E '^go [0-9]' "$gomod")

{
  echo "module isthmus.dev/kubebuild"
  echo
  echo "$goline"
  echo
  echo "require k8s.io/kubernetes $version"
  echo
  echo "replace ("
  sed -n 's|^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*$|\1|p' "$gomod" | while read -r m; do
    echo "	$m => $m $staging_version"
  done
  echo ")"
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package kubebuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubectl/pkg/cmd"
)
GO
echo "resolving modules for kubernetes $version ..."
GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
GOFLAGS=-mod=mod go get "k8s.io/kubernetes@$version" >/dev/null

mkdir -p "$out.tmp"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$version" | cut -d. -f2)"
for b in "${missing[@]}"; do
  pkg="k8s.io/kubernetes/cmd/$b"
  echo "building $b $version (this takes a few minutes on 2 cores) ..."
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$out.tmp/$b" "$pkg"
done
mkdir -p "$out"
for b in "${missing[@]}"; do mv "$out.tmp/$b" "$out/$b"; done
rmdir "$out.tmp" 2>/dev/null || true
echo "kubernetes $version: built into $out"
