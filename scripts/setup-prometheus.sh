#!/usr/bin/env bash
# Installs Prometheus (`prometheus` server and `promtool`) for the operations tests
# (tests/test_ops_*.py): rule checks, rule unit tests, and a real server scraping stream_lis.
# Idempotent: does nothing when both binaries are already on PATH.
#
# As root (CI, a fresh Debian 12 machine): installs Debian's `prometheus` package (2.42 on
# bookworm) without its recommends, and makes sure the package's own service is neither started
# by the install nor left running: the tests start their own server on loopback.
# Not root: prints how to install and exits 0; the tests that need Prometheus then skip with
# that reason (outside CI; in CI, where this runs as root, a missing promtool fails them).
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
  cat >&2 <<'EOF'
setup-prometheus: `prometheus` and `promtool` are not on PATH, and installing them needs root:
    sudo apt-get update && sudo apt-get install -y --no-install-recommends prometheus
  (Debian/Ubuntu; elsewhere put the release tarball's `prometheus` and `promtool` on PATH.)
  Until then the Prometheus tests (tests/test_ops_promtool.py, tests/test_ops_prometheus_integration.py,
  tests/test_ops_dashboard.py) are skipped.
EOF
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-prometheus: no apt-get here; install prometheus and promtool by hand" >&2
  exit 0
fi

echo "setup-prometheus: installing Debian's prometheus package (apt-get; about a minute the first time)"

# Keep the package's init script from starting the service during the install (exit code 101
# means "action forbidden" to invoke-rc.d). Respect a policy-rc.d that is already there.
POLICY=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e "$POLICY" ]]; then
  printf '#!/bin/sh\n# temporary: written by stream_lis scripts/setup-prometheus.sh\nexit 101\n' >"$POLICY"
  chmod 0755 "$POLICY"
  created_policy=1
fi
cleanup() {
  if [[ $created_policy == 1 ]]; then rm -f "$POLICY"; fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
LOG="$(mktemp)"
run_logged() {
  if ! "$@" >"$LOG" 2>&1; then
    echo "setup-prometheus: failed: $*" >&2
    cat "$LOG" >&2
    exit 1
  fi
}
run_logged apt-get update -qq
run_logged apt-get install -y -qq --no-install-recommends prometheus
rm -f "$LOG"

# Belt and braces: if a service manager started it anyway, stop it and keep it from starting
# at boot. Without systemd these are no-ops that may fail; that is fine.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
elif command -v service >/dev/null 2>&1; then
  if service prometheus status >/dev/null 2>&1; then service prometheus stop >/dev/null 2>&1 || true; fi
fi

for bin in prometheus promtool; do
  if ! command -v "$bin" >/dev/null 2>&1; then
    echo "setup-prometheus: $bin is still not on PATH after the install" >&2
    exit 1
  fi
done
echo "setup-prometheus: $(prometheus --version 2>&1 | head -1)"
