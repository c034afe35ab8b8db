"""Topic administration (kafka-python): create the topics the runtime needs, describe them.

``create`` is idempotent: existing topics are reported and left as they are, except for the
size limits a release writes up to (``LIMITS``), which are raised where they fall short; an
existing input topic whose time retention counts from its producers' timestamps is warned
about (``ARRIVAL_TIME``), not changed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from ...config import Config


log = logging.getLogger("stream_lis.topics")

#: Largest message on the internal labelled topic (200 records of at most 64 KiB each fit).
LABELLED_MAX_BYTES = 32 * 1024 * 1024

#: Topic settings that bound what the runtime writes: on a topic that already exists, a value
#: below the one ``topic_specs`` gives is raised to it (never lowered). A topic created by an
#: older release, or before ``kafka.max_checkpoint_bytes`` was raised, would otherwise refuse
#: every checkpoint (or part) over its old limit, for as long as it lives.
LIMITS = ("max.message.bytes", "segment.bytes")

#: The input topics' records are stamped by the broker as it stores them, so their time
#: retention counts from arrival. The service reads event time from each record's ``ts``,
#: never from its Kafka timestamp; with the producer's timestamps (CreateTime), a backfill of
#: events stamped with their own times, older than the retention, would be deleted within
#: minutes of being written, before a worker read it.
ARRIVAL_TIME = {"message.timestamp.type": "LogAppendTime"}


#: How long a stopping stage waits for its last offset commit (the broker may be away).
STOP_COMMIT_S = 10.0


def position(consumer: KafkaConsumer, tp: TopicPartition, timeout_ms: int | None = None) -> int:
    """``consumer.position(tp)``, raising ``KafkaTimeoutError`` where kafka-python 3.0 gives
    ``None``: it swallows its own timeout while the broker does not answer (an offset reset
    waiting for it), and a ``None`` compared with an offset raised ``TypeError``, which no
    retry of a client error caught."""
    pos = consumer.position(tp, timeout_ms=timeout_ms)
    if pos is None:
        raise KafkaTimeoutError(f"no position for {tp.topic}/{tp.partition}: the broker did not answer")
    return pos


def commit_offsets(consumer: KafkaConsumer, offsets: dict[TopicPartition, int], log: logging.Logger,
                   wait_s: float | None = None) -> None:
    """Commit a stage's checkpointed offsets: only ``topics describe`` and lag tools read them
    (the checkpoint is the truth), so a failure is logged, not raised.

    Sent without waiting (``wait_s`` None), from a stage's loop: a commit that waits blocks the
    loop for the client's whole request timeout (30 s) when the broker stops answering just
    after a checkpoint, and that loop then reads as stalled (``/healthz``). The outcome is
    logged from the consumer's next poll; a later commit supersedes a failed one. A stage
    stopping waits up to ``wait_s`` (its last commit must land before the consumer closes).
    Call it without the stage's lock: a waiting commit waits on the consumer's IO loop, which
    awaits the rebalance listener (which takes that lock) during a rebalance."""
    if not offsets:
        return
    committed = {tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()}
    try:
        if wait_s is None:
            consumer.commit_async(committed, callback=lambda _offsets, res: _commit_failed(res, log))
        else:
            consumer.commit(committed, timeout_ms=int(wait_s * 1000))
    except Exception as exc:
        log.warning("offset commit failed: %s", exc)


def _commit_failed(res: object, log: logging.Logger) -> None:
    if isinstance(res, BaseException):
        log.warning("offset commit failed: %s: %s", type(res).__name__, res)


class LagMeter:
    """A stage's consumer lag (messages between its position and the end of each assigned
    partition), measured now and then, through broker outages.

    Asking for the partitions' end offsets needs the broker. When it does not answer (a
    stalled or restarting broker, a network partition), the stage must go on, not stop: its
    consumer reconnects by itself and the stage's input simply pauses. So a failed
    measurement keeps the last lag (``measure`` returns False: callers that gate on a fresh
    lag wait), says so once in the log, and says when the broker answers again.
    """

    #: How long one measurement may wait for the broker (the client's default is 30 s, during
    #: which the stage would not poll, checkpoint or stop).
    TIMEOUT_MS = 5_000

    def __init__(self, consumer: KafkaConsumer, log: logging.Logger) -> None:
        self.consumer, self.log = consumer, log
        self.lag: dict[tuple[str, int], int] = {}
        self._failing_since: float | None = None

    @property
    def answering(self) -> bool:
        """False from a failed measurement until one succeeds (``stream_lis_broker_answering``)."""
        return self._failing_since is None

    def measure(self) -> bool:
        """Refresh ``lag``; False (``lag`` unchanged) when the broker could not be asked."""
        consumer = self.consumer
        tps = list(consumer.assignment())
        try:
            end = consumer.end_offsets(tps, timeout_ms=self.TIMEOUT_MS) if tps else {}
            lag = {(tp.topic, tp.partition): max(0, end[tp] - position(consumer, tp, self.TIMEOUT_MS))
                   for tp in tps}
        except KafkaError as exc:
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                self.log.warning("the broker does not answer (%s): consumer lag kept at its last value; the stage "
                                 "goes on and its consumer reconnects by itself", exc)
            return False
        if self._failing_since is not None:
            self.log.warning("the broker answers again, after %.0f s", time.monotonic() - self._failing_since)
            self._failing_since = None
        self.lag = lag
        return True


def can_checkpoint(meter: LagMeter, why: str, ask: bool = False) -> bool:
    """Whether a stage saves a checkpoint in the foreground now (``why``: stopping, partitions
    revoked): not while the broker does not answer. Each save would wait out the client's
    timeouts, minutes in all, past Kubernetes' grace period; the partitions' next owner
    resumes from their last checkpoint and drops what it applied twice.

    ``ask``: measure first (up to ``LagMeter.TIMEOUT_MS``), for a stage stopping on its own
    thread: its last measurement may predate an outage (another stage saw it first, and the
    stage was asked to stop before its next one). Not from a rebalance listener, which the
    consumer's IO loop awaits."""
    if ask:
        meter.measure()
    if meter.answering:
        return True
    meter.log.warning("%s without a checkpoint: the broker does not answer; the next owner of the partitions "
                      "resumes from their last one", why)
    return False


def topic_specs(cfg: Config) -> list[NewTopic]:
    k, t = cfg.kafka, cfg.kafka.topics
    n, r = k.partitions, k.replication_factor
    week = str(7 * 24 * 3600 * 1000)
    return [
        NewTopic(t.impressions, n, r, topic_configs={"retention.ms": week, **ARRIVAL_TIME}),
        NewTopic(t.clicks, n, r, topic_configs={"retention.ms": week, **ARRIVAL_TIME}),
        NewTopic(t.preferences, n, r, topic_configs={"cleanup.policy": "compact"}),
        NewTopic(t.embeddings, n, r, topic_configs={"cleanup.policy": "compact"}),
        # Envelopes of arm records: split by the join stage at ENVELOPE_BYTES (1 MiB) encoded.
        NewTopic(t.labelled, n, r, topic_configs={"retention.ms": week, "max.message.bytes": str(LABELLED_MAX_BYTES)}),
        NewTopic(t.dead_letters, n, r, topic_configs={"retention.ms": str(30 * 24 * 3600 * 1000)}),
        # Segments hold whole messages: set here, not left to a broker default that may be
        # smaller than a checkpoint part (the broker refuses such a part).
        NewTopic(t.checkpoints, 1, r, topic_configs={"cleanup.policy": "compact",
                                                    "max.message.bytes": str(k.max_checkpoint_bytes),
                                                    "segment.bytes": str(min(2**31 - 1, max(1 << 30, 2 * k.max_checkpoint_bytes))),
                                                    "segment.ms": str(3600 * 1000)}),
    ]


def create_topics(cfg: Config, client_kw: dict[str, Any], ready_timeout_s: float = 30.0) -> list[tuple[str, str]]:
    """Create every missing topic; returns ``(name, "created" | "exists")`` once every
    partition of the topics it created has a leader (or after ``ready_timeout_s``, logged).

    Why wait: a producer that starts on a topic whose partitions have no leader yet gets
    retriable errors, backs off and stalls for seconds; to a worker already reading, that
    pause looks like the end of the input (``kafka.idle_partition_timeout``).
    """
    admin = KafkaAdminClient(**client_kw)
    try:
        existing = set(admin.list_topics())
        out, found = [], []
        for spec in topic_specs(cfg):
            if spec.name not in existing:
                try:
                    admin.create_topics([spec])
                    out.append((spec.name, "created"))
                    continue
                except TopicAlreadyExistsError:
                    pass
            out.append((spec.name, "exists"))
            found.append(spec)
        raised = _raise_limits(admin, found)
        _warn_producer_time(admin, [s.name for s in found if (s.topic_configs or {}).get("message.timestamp.type")])
        notes = {name: [change] for name, change in raised.items()}
        for name, note in _partition_notes(admin, found, servers(client_kw), {cfg.kafka.topics.impressions,
                                                                              cfg.kafka.topics.clicks}).items():
            notes.setdefault(name, []).append(note)
        out = [(name, "; ".join([what, *notes[name]]) if name in notes else what) for name, what in out]
        created = [name for name, what in out if what == "created"]
        if created and not _wait_for_leaders(admin, created, ready_timeout_s):
            log.warning(
                "topics %s: some partitions still have no leader after %.0f s", ", ".join(created), ready_timeout_s)
        return out
    finally:
        admin.close()


def servers(client_kw: dict[str, Any]) -> str:
    """The bootstrap servers the clients were given (``--bootstrap`` and the environment
    included), as the Kafka tools take them."""
    given = client_kw.get("bootstrap_servers", "")
    return given if isinstance(given, str) else ",".join(given)


def _partition_notes(admin: KafkaAdminClient, specs: list[NewTopic], bootstrap: str,
                     inputs: set[str]) -> dict[str, str]:
    """Existing topics whose partition count is not the spec's: said, never changed (adding
    partitions moves keys to other partitions; an operator raising ``kafka.partitions`` to
    scale out must learn that nothing happened, and how to do it)."""
    want = {s.name: s.num_partitions for s in specs}
    if not want:
        return {}
    try:
        have = partition_counts(admin, list(want))
    except Exception as exc:  # noqa: BLE001 - a description refused must not stop the worker's start
        log.info("topics: partition counts not checked (%s)", exc)
        return {}
    return {name: (f"{have[name]} partitions, not the {n} configured: not changed here (more: "
                   f"{alter_command(bootstrap, name, n)}" + (", impressions and clicks together)" if name in inputs else ")"))
            for name, n in want.items() if name in have and have[name] < n}


def alter_command(bootstrap: str, topic: str, partitions: int) -> str:
    """The Kafka tool's command that gives ``topic`` ``partitions`` partitions.

    >>> alter_command("b1:9092,b2:9092", "imp", 4)
    'kafka-topics.sh --bootstrap-server b1:9092,b2:9092 --alter --topic imp --partitions 4'
    """
    return f"kafka-topics.sh --bootstrap-server {bootstrap} --alter --topic {topic} --partitions {partitions}"


def ensure_topics(cfg: Config, client_kw: dict[str, Any], names: list[str]) -> list[str]:
    """Make the runtime's topics, as ``topics create`` does, when any of ``names`` is missing;
    returns those created. A producer's first send to a missing topic has the broker create it
    with its own defaults (its partition count, CreateTime, its retention), which stay."""
    admin = KafkaAdminClient(**client_kw)
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()
    if all(n in existing for n in names):
        return []
    return [name for name, what in create_topics(cfg, client_kw) if what == "created"]


def partition_counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partitions of each of these topics that exists (one request)."""
    # "name" in kafka-python 3's answer, "topic" in 2's
    return {d.get("name", d.get("topic")): len(d["partitions"]) for d in admin.describe_topics(names)
            if d.get("error_code", 0) == 0 and d.get("partitions")}


def copartition_problem(cfg: Config, client_kw: dict[str, Any]) -> str | None:
    """What is wrong with the input topics' partitioning, or None.

    The join reads partition p of both input topics together: a click is joined only if it
    lands on its impression's partition number, which needs the two topics to have as many
    partitions (and producers to key them alike). With different counts about half the clicks
    or more would never find their impression, silently: the CTR and every AUC biased. A
    topic that does not exist yet is no problem here (the stages wait for it).
    """
    t = cfg.kafka.topics
    admin = KafkaAdminClient(**client_kw)
    try:
        counts = partition_counts(admin, [t.impressions, t.clicks])
    finally:
        admin.close()
    return copartition_message(t.impressions, t.clicks, counts.get(t.impressions), counts.get(t.clicks),
                               bootstrap=servers(client_kw))


def copartition_message(impressions: str, clicks: str, n_imp: int | None, n_clk: int | None,
                        when: str = "before starting workers", bootstrap: str = "BROKER:9092") -> str | None:
    """What ``copartition_problem`` says of these partition counts (``None``: unknown, or equal).

    >>> copartition_message("imp", "clk", 4, 4) is None
    True
    >>> copartition_message("imp", "clk", 4, 2, "now", "b:9092")
    "topic imp has 4 partitions and topic clk 2: the input topics must have the same number (a click is joined only on its impression's partition); add partitions to the smaller one (kafka-topics.sh --bootstrap-server b:9092 --alter --topic clk --partitions 4) now"
    """
    if not n_imp or not n_clk or n_imp == n_clk:
        return None
    smaller = clicks if n_clk < n_imp else impressions
    return (f"topic {impressions} has {n_imp} partitions and topic {clicks} {n_clk}: the input topics must have "
            f"the same number (a click is joined only on its impression's partition); add partitions to the "
            f"smaller one ({alter_command(bootstrap, smaller, max(n_imp, n_clk))}) {when}")


def _topic_configs(admin: KafkaAdminClient, names: list[str]) -> dict[str, dict[str, str | None]]:
    """Every setting of each topic (defaults included), ``{topic: {key: value}}``."""
    got = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names],
                                 config_filter="all")["topic"]
    return {name: {k: v.get("value") for k, v in got.get(name, {}).items()} for name in names}


def _raise_limits(admin: KafkaAdminClient, specs: list[NewTopic]) -> dict[str, str]:
    """Raise the ``LIMITS`` of existing topics that are below their spec; returns what changed
    per topic (``"max.message.bytes 65536 -> 1048576"``). A broker that does not let us read or
    change them (no ALTER_CONFIGS permission) gets a warning naming the settings to change."""
    wanted = {s.name: {k: int(v) for k, v in (s.topic_configs or {}).items() if k in LIMITS} for s in specs}
    wanted = {name: w for name, w in wanted.items() if w}
    if not wanted:
        return {}
    try:
        got = _topic_configs(admin, list(wanted))
        changes: dict[str, dict[str, str]] = {}
        done: dict[str, str] = {}
        for name, w in wanted.items():
            now = {k: int(v) for k, v in got.get(name, {}).items() if k in w}
            up = {k: v for k, v in w.items() if k in now and now[k] < v}
            if up:
                changes[name] = {k: str(v) for k, v in up.items()}
                done[name] = ", ".join(f"{k} {now[k]} -> {v}" for k, v in up.items())
        if not changes:
            return {}
        result = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=c) for name, c in changes.items()],
                                     raise_on_unknown=False)["topic"]
        failed = {name: r for name, r in result.items() if r != "OK"}
        if failed:
            raise RuntimeError("; ".join(f"{name}: {r}" for name, r in failed.items()))
        return done
    except Exception as exc:  # no permission, an older client API: the topics still work below the limits
        log.warning("could not check or raise the size limits of topics %s (%s): set %s yourself",
                    ", ".join(wanted), exc, "; ".join(f"{name}: " + ", ".join(f"{k}>={v}" for k, v in w.items())
                                                     for name, w in wanted.items()))
        return {}


def _warn_producer_time(admin: KafkaAdminClient, names: list[str]) -> list[str]:
    """Warn about (and return) the existing topics among ``names`` whose time retention counts
    from their producers' timestamps (see ``ARRIVAL_TIME``). Not changed: other consumers of a
    user's topic may read those timestamps."""
    if not names:
        return []
    try:
        got = _topic_configs(admin, names)
    except Exception as exc:  # no DescribeConfigs permission: nothing to tell
        log.debug("could not read the timestamp settings of topics %s (%s)", ", ".join(names), exc)
        return []
    risky = []
    for name in names:
        conf = got.get(name, {})
        retention = int(conf.get("retention.ms") or -1)
        if conf.get("message.timestamp.type") == "CreateTime" and retention >= 0:
            risky.append(name)
            span = f"{retention / 3_600_000:g} h" if retention < 172_800_000 else f"{retention / 86_400_000:g} days"
            log.warning("topic %s keeps its producers' timestamps (message.timestamp.type=CreateTime) and deletes "
                        "records by them (retention.ms=%d): events its producers stamp with their own times, "
                        "older than %s (a backfill), are deleted within minutes, before a worker reads them. "
                        "stream-lis reads event time from each record's ts, not its Kafka timestamp: set "
                        "message.timestamp.type=LogAppendTime on the topic", name, retention, span)
    return risky


def _wait_for_leaders(admin: KafkaAdminClient, names: list[str], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        topics = admin.describe_topics(names)
        ready = len(topics) == len(names) and all(
            t["error_code"] == 0 and t["partitions"] and all(p["error_code"] == 0 and p["leader_id"] >= 0
                                                             for p in t["partitions"]) for t in topics)
        if ready:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _group_offsets(admin: KafkaAdminClient, group: str) -> dict[TopicPartition, Any]:
    """A group's committed offsets, ``{partition: OffsetAndMetadata}``. kafka-python 3 asks
    for several groups at once and answers ``{group: {partition: ...}}``; 2.x has one group's
    call, answering ``{partition: ...}``."""
    fetch = getattr(admin, "list_group_offsets", None)
    if fetch is None:
        return admin.list_consumer_group_offsets(group)
    got = fetch(group)
    return got.get(group, {}) if isinstance(got.get(group), dict) else got


def describe_topics(cfg: Config, client_kw: dict[str, Any]) -> list[dict[str, Any]]:
    """Partitions, end offsets and, per consumer group of the runtime, committed offsets and lag."""
    t = cfg.kafka.topics
    names = [t.impressions, t.clicks, t.preferences, t.embeddings, t.labelled, t.dead_letters, t.checkpoints]
    groups = {t.impressions: f"{cfg.kafka.group_id}-join", t.clicks: f"{cfg.kafka.group_id}-join",
              t.labelled: f"{cfg.kafka.group_id}-eval"}
    admin = KafkaAdminClient(**client_kw)
    consumer = KafkaConsumer(**client_kw)
    try:
        existing = set(admin.list_topics())
        committed: dict[str, dict] = {}
        for g in set(groups.values()):
            try:
                committed[g] = _group_offsets(admin, g)
            except Exception:  # group not there yet
                committed[g] = {}
        rows = []
        for name in names:
            if name not in existing:
                rows.append({"topic": name, "exists": False})
                continue
            tps = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or ())]
            end = consumer.end_offsets(tps)
            g = groups.get(name)
            begin = consumer.beginning_offsets(tps) if g else {}
            for tp in tps:
                row = {"topic": name, "exists": True, "partition": tp.partition, "end_offset": end[tp]}
                if g:
                    meta = committed.get(g, {}).get(tp)
                    off = getattr(meta, "offset", None)
                    if off is None or off < 0:
                        # Nothing committed: a worker starts from the beginning (auto_offset_reset
                        # earliest), so all that is there is its backlog.
                        row.update(group=g, committed=None, lag=end[tp] - begin[tp])
                    else:
                        row.update(group=g, committed=off, lag=end[tp] - off)
                rows.append(row)
        return rows
    finally:
        consumer.close()
        admin.close()
