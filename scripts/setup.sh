#!/bin/sh
# One-time set-up of a fresh Debian/Ubuntu machine (as root): Debian packages the tests and the demo
# use, Node 24, npm ci and the build (TypeScript + the native original-destination addon).
# Safe to re-run. Source scripts/env.sh afterwards (or use scripts/test.sh / scripts/demo.sh).
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
PACKAGES="iptables nftables iproute2 dnsutils curl conntrack util-linux procps g++ make python3 nginx-light libnginx-mod-stream socat kmod dnsmasq-base iperf3 haproxy dnsperf wrk nghttp2-client gnuplot-nox squid dante-server postgresql"
if [ "${DETOUR_SKIP_APT:-}" != 1 ] && command -v apt-get >/dev/null 2>&1; then
  missing=""
  for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    # Servers such as nginx must not start on the host when installed: tests start them inside
    # their own network namespaces. policy-rc.d 101 tells Debian's maintainer scripts not to.
    added_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && added_policy=1
    fi
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null || status=$?
    [ -n "$added_policy" ] && rm -f /usr/sbin/policy-rc.d
    [ "${status:-0}" = 0 ] || { echo "setup: apt-get install failed" >&2; exit 1; }
  fi
fi
NODE_BIN=$("$REPO/scripts/ensure-node.sh")
[ -n "$NODE_BIN" ] && PATH="$NODE_BIN:$PATH" && export PATH
cd "$REPO"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
