#!/bin/sh
# Set up (packages, Node 24, npm ci, build), then run every test: unit tests, golden files, and the
# end-to-end tests that build network namespaces of their own (needs root). Extra args go to jest.
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
"$REPO/scripts/setup.sh"
. "$REPO/scripts/env.sh"
cd "$REPO"
npm run --silent typecheck
exec node --experimental-vm-modules node_modules/jest/bin/jest.js "$@"
