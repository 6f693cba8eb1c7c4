#!/usr/bin/env bash
# Runs every benchmark in bench/ (or those whose name contains FILTER) and prints its figures.
# usage: scripts/bench.sh [FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
for f in bench/*.ts; do
  case "$f" in *"${1:-}"*) ;; *) continue ;; esac
  echo "── $f"
  node --no-warnings "$f"
done
