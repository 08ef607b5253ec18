#!/usr/bin/env bash
# Install the Debian packages the tests and benchmarks run for real: SNMP tools, Prometheus and
# promtool, iperf3, iproute2 (ip netns, tc), wrk (the collector load test), chromium (the
# classroom page, driven by Playwright; Playwright never downloads a browser of its own),
# the linter shellcheck (deploy/pi/install.sh).
# Idempotent: does nothing when all are present.
set -euo pipefail

PACKAGES=(make snmp snmpd iperf3 iproute2 prometheus prometheus-alertmanager wrk chromium shellcheck systemd python3-venv)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Debian's prometheus packages start their daemons on install where systemd runs; the tests start
# their own on loopback ports, so a running system copy does no harm.
apt-get install -y -qq --no-install-recommends "${missing[@]}"
