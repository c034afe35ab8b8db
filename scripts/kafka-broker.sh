#!/usr/bin/env bash
# Single-node Apache Kafka broker (KRaft, broker+controller in one JVM) on
# loopback, for development and the tests marked `kafka`.
# No Docker, no tarball: the broker jars come from Maven Central through
# scripts/kafka/pom.xml. See scripts/kafka/README.md.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"

KAFKA_VERSION="${STREAM_LIS_KAFKA_VERSION:-4.3.1}"
CACHE_ROOT="${STREAM_LIS_CACHE:-$HOME/.cache/stream-lis}"
LIBS="$CACHE_ROOT/kafka/$KAFKA_VERSION/libs"
MARKER="$CACHE_ROOT/kafka/$KAFKA_VERSION/.fetched"
DATA_DIR="${STREAM_LIS_KAFKA_DIR:-/tmp/stream-lis-kafka}"
PORT="${STREAM_LIS_KAFKA_PORT:-9092}"
CONTROLLER_PORT=$((PORT + 1))
HOST=127.0.0.1
START_TIMEOUT="${STREAM_LIS_KAFKA_START_TIMEOUT:-90}"
LOG_LEVEL="${STREAM_LIS_KAFKA_LOG_LEVEL:-WARN}"
: "${KAFKA_HEAP_OPTS:=-Xmx512m -Xms512m}"
: "${KAFKA_JVM_PERFORMANCE_OPTS:=-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}"

PROPS="$DATA_DIR/server.properties"
LOG4J="$DATA_DIR/log4j2.properties"
LOG_DIRS="$DATA_DIR/kraft-logs"
BROKER_LOG="$DATA_DIR/broker.log"
PID_FILE="$DATA_DIR/broker.pid"
LOCK_FILE="$DATA_DIR/.lock"

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
  JAVA="$JAVA_HOME/bin/java"
else
  JAVA="java"
fi

say() { echo "kafka-broker: $*"; }
die() { echo "kafka-broker: error: $*" >&2; exit 1; }

usage() {
  cat <<EOF
Usage: $(basename "$0") {start|stop [--wipe]|status|fetch|logs [N]|--help}

Runs a real single-node Apache Kafka $KAFKA_VERSION broker in KRaft mode
(process.roles=broker,controller, node.id=1) bound to $HOST only.

Subcommands:
  start         Fetch the jars if needed, format the storage once, start the
                broker in the background and wait until it answers a Kafka
                Metadata request (up to \$STREAM_LIS_KAFKA_START_TIMEOUT s).
                Idempotent: exits 0 at once if the broker is already up.
                On failure prints the last 50 lines of broker.log, exits 1.
  stop [--wipe] SIGTERM (clean shutdown), SIGKILL after 30 s. Idempotent.
                --wipe also deletes the data dir (topics, offsets, logs).
  status        Exit 0 and print "running pid N on $HOST:PORT" when the broker
                is up, else print "not running" and exit 1.
  fetch         Resolve the broker jars with Maven (scripts/kafka/pom.xml)
                into the cache dir. Skipped when already done.
  logs [N]      Print the last N (default 100) lines of broker.log.

Environment:
  STREAM_LIS_KAFKA_PORT     PLAINTEXT listener port (default 9092); the KRaft
                            controller listens on PORT+1.        [now $PORT]
  STREAM_LIS_KAFKA_DIR      data dir: server.properties, log4j2.properties,
                            kraft-logs/, broker.log, broker.pid
                            (default /tmp/stream-lis-kafka).     [now $DATA_DIR]
  STREAM_LIS_CACHE          cache root; jars go to
                            \$STREAM_LIS_CACHE/kafka/<version>/libs
                            (default ~/.cache/stream-lis).       [now $CACHE_ROOT]
  STREAM_LIS_KAFKA_VERSION  org.apache.kafka:kafka_2.13 version (default 4.3.1)
  STREAM_LIS_KAFKA_START_TIMEOUT  seconds start waits for readiness (default 90)
  STREAM_LIS_KAFKA_LOG_LEVEL      root log4j2 level in broker.log (default WARN;
                            startup/shutdown milestones are always at INFO)
  KAFKA_HEAP_OPTS           default "-Xmx512m -Xms512m"
  KAFKA_JVM_PERFORMANCE_OPTS  JVM flags (default: G1, as kafka-run-class.sh)
  KAFKA_OPTS                extra JVM flags
  JAVA_HOME                 Java 17+ to use (default: java on PATH)

Bootstrap servers for clients: $HOST:$PORT
EOF
}

# ---------------------------------------------------------------- helpers

java_major() {
  "$JAVA" -XshowSettings:properties -version 2>&1 |
    awk -F'= ' '/java.specification.version/ {print $2; exit}' | cut -d. -f1
}

read_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  echo "$pid"
}

# pid of our broker if its process is alive (and really is a kafka.Kafka JVM
# for our server.properties), else fails.
live_pid() {
  local pid
  pid="$(read_pid)" || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "kafka.Kafka $PROPS" || return 1
  fi
  echo "$pid"
}

port_open() {  # port_open PORT
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# A real Kafka round trip: Metadata v4 (oldest version Kafka 4 still serves)
# asking for no topics; ready when the response lists at least one live
# (registered, unfenced) broker. Python stdlib only.
kafka_ready() {
  python3 - "$HOST" "$PORT" <<'PY' 2>/dev/null
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
cid = b"stream-lis-ready"
# header v1: api_key=3 Metadata, api_version=4, correlation_id, client_id
body = struct.pack(">hhih", 3, 4, 7, len(cid)) + cid
body += struct.pack(">i", 0)      # topics: empty array -> no topic metadata
body += struct.pack(">?", False)  # allow_auto_topic_creation
try:
    with socket.create_connection((host, port), timeout=3) as s:
        s.settimeout(3)
        s.sendall(struct.pack(">i", len(body)) + body)
        def recv(n):
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise EOFError
                buf += chunk
            return buf
        size, = struct.unpack(">i", recv(4))
        resp = recv(size)
    corr, throttle, nbrokers = struct.unpack(">iii", resp[:12])
    sys.exit(0 if corr == 7 and nbrokers >= 1 else 1)
except Exception:
    sys.exit(1)
PY
}

tail_log() {
  if [[ -f "$BROKER_LOG" ]]; then
    echo "----- last ${1:-50} lines of $BROKER_LOG -----" >&2
    tail -n "${1:-50}" "$BROKER_LOG" >&2
    echo "-----" >&2
  fi
}

with_lock() {
  mkdir -p "$DATA_DIR"
  exec 9>"$LOCK_FILE"
  flock -w 180 9 || die "could not lock $LOCK_FILE"
}

# ---------------------------------------------------------------- fetch

do_fetch() {
  if [[ -f "$MARKER" ]] && compgen -G "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars)"
  local parent tmp
  parent="$(dirname "$LIBS")"
  mkdir -p "$parent"
  # one fetch at a time per version (brokers with different data dirs share it)
  exec 8>"$parent/.fetch.lock"
  flock -w 600 8 || die "could not lock $parent/.fetch.lock"
  if [[ -f "$MARKER" ]] && compgen -G "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null; then
    exec 8>&-
    return 0
  fi
  say "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
  tmp="$(mktemp -d "$parent/libs.tmp.XXXXXX")"
  local mvn_log="$parent/fetch.log"
  if ! mvn -B -q -Dstyle.color=never -f "$POM" \
      -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$tmp" >"$mvn_log" 2>&1 8>&- 9>&-; then
    cat "$mvn_log" >&2
    rm -rf "$tmp"
    die "maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (log: $mvn_log)"
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || { rm -rf "$tmp"; die "kafka_2.13 jar missing after fetch"; }
  rm -rf "$LIBS" "$MARKER"
  mv "$tmp" "$LIBS"
  date -u +%FT%TZ >"$MARKER"
  exec 8>&-
}

# ---------------------------------------------------------------- config

write_config() {
  mkdir -p "$DATA_DIR" "$LOG_DIRS"
  cat >"$PROPS" <<EOF
# Generated by scripts/kafka-broker.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
# Static quorum: the voter set comes from this file on every start, so the
# data dir survives a change of STREAM_LIS_KAFKA_PORT (a dynamic quorum,
# controller.quorum.bootstrap.servers + format --standalone, would persist
# the controller endpoint in the metadata log).
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
log.dirs=$LOG_DIRS

num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4

num.partitions=4
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true

offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# broker.session.timeout.ms stays at its 9 s default: a start after a kill -9
# waits that long for the old registration to expire, but a shorter value
# risks fencing the broker when a busy 2-core test machine starves it.

# small segments / short retention: this broker only ever holds test data
log.segment.bytes=16777216
log.retention.hours=6
log.retention.check.interval.ms=60000
log.cleaner.dedupe.buffer.size=16777216
log.cleaner.threads=1
metadata.log.segment.bytes=16777216
EOF
  cat >"$LOG4J" <<EOF
# Generated by scripts/kafka-broker.sh. Everything goes to stdout, which the
# script redirects to broker.log.
status = warn
name = stream-lis-kafka
# keep logging while Kafka's own shutdown hook runs (log4j2 would stop first)
shutdownHook = disable
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = $LOG_LEVEL
rootLogger.appenderRef.out.ref = OUT
# startup / shutdown milestones ("Kafka Server started", "shut down completed")
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
logger.kafka.name = kafka.Kafka\$
logger.kafka.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
logger.controller.name = kafka.server.ControllerServer
logger.controller.level = INFO
# chatty even at WARN on a single node
logger.netclient.name = org.apache.kafka.clients.NetworkClient
logger.netclient.level = ERROR
EOF
}

random_cluster_id() {
  # Same shape as org.apache.kafka.common.Uuid.randomUuid(): 16 random bytes,
  # URL-safe base64 without padding, never starting with '-'.
  python3 -c '
import base64, os
while True:
    s = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break'
}

format_storage() {
  local stamp="$DATA_DIR/kafka.version"
  if [[ -f "$LOG_DIRS/meta.properties" ]]; then
    if [[ -f "$stamp" && "$(cat "$stamp")" != "$KAFKA_VERSION" ]]; then
      die "$DATA_DIR was formatted by Kafka $(cat "$stamp"), not $KAFKA_VERSION; run '$(basename "$0") stop --wipe' first"
    fi
    return 0
  fi
  local cid
  cid="$(random_cluster_id)"
  say "formatting KRaft storage in $LOG_DIRS (cluster id $cid)"
  if ! "$JAVA" -cp "$LIBS/*" -Dlog4j2.configurationFile="$LOG4J" \
      kafka.tools.StorageTool format --ignore-formatted \
      --cluster-id "$cid" --config "$PROPS" >"$DATA_DIR/format.log" 2>&1; then
    cat "$DATA_DIR/format.log" >&2
    die "kafka-storage format failed"
  fi
  echo "$KAFKA_VERSION" >"$stamp"
}

# ---------------------------------------------------------------- commands

wait_ready() {  # wait_ready PID
  local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "broker process $pid exited during startup" >&2
      return 1
    fi
    if port_open "$PORT" && kafka_ready; then
      return 0
    fi
    sleep 0.5
  done
  say "broker not ready after ${START_TIMEOUT}s" >&2
  return 1
}

cmd_start() {
  with_lock
  local pid
  if pid="$(live_pid)"; then
    if kafka_ready; then
      say "already running pid $pid on $HOST:$PORT (log: $BROKER_LOG)"
      return 0
    fi
    say "pid $pid is starting; waiting for it"
    if wait_ready "$pid"; then
      say "running pid $pid on $HOST:$PORT (log: $BROKER_LOG)"
      return 0
    fi
    tail_log 50
    exit 1
  fi
  rm -f "$PID_FILE"
  if port_open "$PORT" || port_open "$CONTROLLER_PORT"; then
    die "port $PORT or $CONTROLLER_PORT on $HOST is in use by another process (set STREAM_LIS_KAFKA_PORT)"
  fi
  command -v "$JAVA" >/dev/null || die "java not found (Kafka $KAFKA_VERSION needs Java 17+)"
  local major
  major="$(java_major)"
  [[ "$major" =~ ^[0-9]+$ && "$major" -ge 17 ]] || die "Java 17+ required, found '$major' ($JAVA)"
  command -v python3 >/dev/null || die "python3 not found (used for the readiness check)"

  do_fetch
  write_config
  format_storage

  [[ -f "$BROKER_LOG" ]] && mv -f "$BROKER_LOG" "$BROKER_LOG.1"
  local t0=$SECONDS
  # shellcheck disable=SC2086  # the *_OPTS variables are word lists
  nohup "$JAVA" $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS ${KAFKA_OPTS:-} \
    -Dlog4j2.configurationFile="$LOG4J" \
    -Dkafka.logs.dir="$DATA_DIR" \
    -cp "$LIBS/*" kafka.Kafka "$PROPS" \
    </dev/null >"$BROKER_LOG" 2>&1 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  say "started pid $pid, waiting for $HOST:$PORT (log: $BROKER_LOG)"
  if wait_ready "$pid"; then
    say "running pid $pid on $HOST:$PORT, ready in $((SECONDS - t0))s"
    return 0
  fi
  tail_log 50
  kill -TERM "$pid" 2>/dev/null || true
  exit 1
}

cmd_stop() {
  local wipe=0
  for arg in "$@"; do
    case "$arg" in
      --wipe) wipe=1 ;;
      *) die "unknown stop option: $arg" ;;
    esac
  done
  if [[ ! -d "$DATA_DIR" ]]; then
    say "not running"
    return 0
  fi
  with_lock
  local pid
  if pid="$(live_pid)"; then
    say "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "pid $pid still alive after 30s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    say "stopped"
  else
    say "not running"
  fi
  rm -f "$PID_FILE"
  if ((wipe)); then
    # safety: only delete a dir that looks like ours
    if [[ -f "$PROPS" || -d "$LOG_DIRS" ]] || [[ -z "$(find "$DATA_DIR" -mindepth 1 -maxdepth 1 ! -name .lock -print -quit)" ]]; then
      rm -rf "$DATA_DIR"
      say "wiped $DATA_DIR"
    else
      die "$DATA_DIR does not look like a kafka-broker.sh data dir; not wiping"
    fi
  fi
}

cmd_status() {
  local pid
  if pid="$(live_pid)" && port_open "$PORT"; then
    echo "running pid $pid on $HOST:$PORT"
    return 0
  fi
  echo "not running"
  return 1
}

cmd_logs() {
  local n="${1:-100}"
  [[ -f "$BROKER_LOG" ]] || die "no log at $BROKER_LOG"
  tail -n "$n" "$BROKER_LOG"
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    fetch) do_fetch; say "jars in $LIBS" ;;
    logs) cmd_logs "$@" ;;
    -h|--help|help) usage ;;
    "") usage >&2; exit 2 ;;
    *) echo "unknown subcommand: $cmd" >&2; usage >&2; exit 2 ;;
  esac
}

main "$@"
