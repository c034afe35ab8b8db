#!/usr/bin/env bash
# The whole test suite from a fresh clone: set-up, the services the tests need (a real Kafka
# broker on loopback), pytest, and clean-up. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
scripts/setup-prometheus.sh   # prometheus + promtool for tests/test_ops_* (Debian package; as root)
export STREAM_LIS_KAFKA_PORT="${STREAM_LIS_KAFKA_PORT:-19092}"
export STREAM_LIS_KAFKA_DIR="${STREAM_LIS_KAFKA_DIR:-/tmp/stream-lis-kafka-test}"
export STREAM_LIS_BOOTSTRAP="127.0.0.1:$STREAM_LIS_KAFKA_PORT"

started_broker=0
if [[ "${STREAM_LIS_SKIP_KAFKA:-0}" != 1 ]]; then
  if ! scripts/kafka-broker.sh status >/dev/null 2>&1; then
    scripts/kafka-broker.sh start
    started_broker=1
  fi
fi
cleanup() {
  if [[ $started_broker == 1 ]]; then scripts/kafka-broker.sh stop --wipe >/dev/null || true; fi
}
trap cleanup EXIT

set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [[ $rc == 5 ]]; then
  echo "test: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit $rc
