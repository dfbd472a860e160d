#!/bin/sh
# The demo of the whole path (needs root): set-up, then rules in a namespace, the dataplane, a call.
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
"$REPO/scripts/setup.sh"
. "$REPO/scripts/env.sh"
exec node "$REPO/dist/scripts/demo.js"
