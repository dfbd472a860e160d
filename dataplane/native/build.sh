#!/bin/sh
# Builds the original-destination N-API addon into <repo>/build/original_dst.node with g++ directly
# (no node-gyp, no install hook, no downloads). Works from any working directory.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CXX=${CXX:-g++}
mkdir -p "$REPO/build"
"$CXX" -shared -fPIC -O2 -std=c++17 -Wall -Wextra \
  -I "$REPO/node_modules/node-addon-api" \
  -I "$REPO/node_modules/node-api-headers/include" \
  -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_CPP_EXCEPTIONS \
  -o "$REPO/build/original_dst.node.tmp" "$HERE/original_dst.cc"
mv "$REPO/build/original_dst.node.tmp" "$REPO/build/original_dst.node"
echo "built $REPO/build/original_dst.node"
