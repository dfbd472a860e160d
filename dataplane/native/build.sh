#!/bin/sh
# Builds the N-API addons into <repo>/build/ with g++ directly (no node-gyp, no install hook, no
# downloads): original_dst.node (SO_ORIGINAL_DST lookup) and splice_relay.node (the splice(2) TCP relay).
# Works from any working directory.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CXX=${CXX:-g++}
mkdir -p "$REPO/build"
for name in original_dst splice_relay; do
  "$CXX" -shared -fPIC -O2 -std=c++17 -Wall -Wextra -pthread \
    -I "$REPO/node_modules/node-addon-api" \
    -I "$REPO/node_modules/node-api-headers/include" \
    -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_CPP_EXCEPTIONS \
    -o "$REPO/build/$name.node.tmp" "$HERE/$name.cc"
  mv "$REPO/build/$name.node.tmp" "$REPO/build/$name.node"
  echo "built $REPO/build/$name.node"
done
