#!/usr/bin/env bash
# The system programs the test suite runs for real, from Debian's packages: caddy (the Caddy end-to-end
# test), prometheus and promtool (test/deploy/prometheus.test.ts), openssl (the TLS tests' certificates).
# Called by ensure-tools.sh, so `npm test` (through `npm run tools`) installs them on a bare Debian machine
# when run as root; otherwise it names the packages to install and fails.
set -euo pipefail

missing=()
command -v caddy >/dev/null || missing+=(caddy)
{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || missing+=(prometheus)
command -v openssl >/dev/null || missing+=(openssl)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure-system-tools: installing ${missing[*]} (Debian packages)…"
  apt-get update -qq
  # --no-install-recommends: prometheus would otherwise pull in its node exporter and more.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The prometheus package starts a daemon of its own on :9090; the tests start theirs on free ports.
  exit 0
fi
echo "ensure-system-tools: the tests need ${missing[*]}; install them (Debian: sudo apt-get install --no-install-recommends ${missing[*]}) or run npm test as root." >&2
exit 1
