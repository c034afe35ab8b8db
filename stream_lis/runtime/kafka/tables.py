"""Compacted side topics read into the evaluation stage's tables, like global tables.

Two tables live beside the stream:

* ``preferences``: the ``external`` probe's dataset, one record per item keyed by item id
  (``{"item_id": ..., "vector": [...]}`` or ``{"item_id": ..., "items": [...]}``);
* ``embeddings``: each arm's MLLM item representation, ``{"arm", "item_id", "vector"}`` and
  an optional ``"experiment"``, keyed one key per (experiment, arm, item).

Compaction keeps each key's latest record; a record with a null value (a tombstone) deletes
what its key set. Every evaluation stage needs a whole table, whichever arms it owns, so a
feed reads every partition, joining no consumer group: from the beginning, at every start.
A partition added to the topic while the feed runs is found within
``kafka.side_topic_refresh`` and read from its beginning too (a group would be told by a
rebalance; a feed without one asks).

Time semantics: a table is not in event time. The feed reads its topic to the end offsets it
found at start before the stage evaluates anything (``recovered``; the worker is not ready
until then), so a restarted worker evaluates with the table it had. After that an update
applies from the next evaluated chunk on, whatever the event time of the examples in it: a
table is "what the team has now", as a later model snapshot would be.

A record the table rejects is counted by reason and sent to the dead-letter topic with its
bytes and ``topic/partition@offset``; the feed goes on. Each start reads the topic again, so
the same bad records are counted again (compaction keeps a key's latest record, and never
compacts the active segment), though not sent again (``letter_marks``): what says whether
the table is still missing data is ``rejected_keys``, the keys whose latest record was
rejected. It clears when the publisher sends a good record (or a tombstone) for each.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections import Counter
from typing import Any, Callable, Protocol, TypeVar

import msgspec
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from ... import __version__
from ...config import Config, parse_duration
from ...embedding_table import REJECT_DETAILS as EMBEDDING_REJECTS
from ...events import Invalid
from ...labeller import InvalidSink
from ...probes.external import REJECT_DETAILS as PREFERENCE_REJECTS
from ..liveness import Pulse
from ..on_thread import OnThread
from .letter_marks import LetterMarks
from .settings import consumer_tuning
from .topics import LagMeter

log = logging.getLogger("stream_lis.tables")

#: Outcomes of a record besides the rejection reasons (the metric's label values); ``absent``:
#: a tombstone for a key the table does not hold (normal when a restart reads it again).
APPLIED = ("upserted", "deleted", "absent")

#: key, value -> outcome (``APPLIED`` or a rejection reason)
Apply = Callable[[bytes | None, bytes | None], str]

T = TypeVar("T")

#: How often a feed waiting for the broker beats its pulse, and after how long it says it waits (seconds).
ASK_BEAT_S = 0.5
ASK_SLOW_S = 5.0
#: How long the loop waits for a partition's position (its offset reset needs the broker).
POSITION_WAIT_MS = 1_000


class _Stopping(Exception):
    """The worker stopped while the feed waited for the broker."""


class TableFeed:
    """Reads ``topic`` into a table through ``apply``, one poll at a time under ``lock`` (the
    evaluation stage's: a chunk is evaluated with one version of the table, never half an
    update). ``recovered`` / ``stopping`` / ``lag`` / ``run`` are what the worker runs a
    stage by."""

    def __init__(self, name: str, topic: str, apply: Apply, size: Callable[[], int], details: dict[str, str],
                 lock: threading.Lock, client_kw: dict[str, Any], dead_letter: InvalidSink,
                 tuning: dict[str, Any] | None = None, refresh_s: float = 30.0, marks_group: str | None = None,
                 rules: str = "") -> None:
        """``refresh_s``: how often to look for partitions added to the topic (the consumer's
        metadata is refreshed as often, so it sees them), and to save how far the rejected
        records are dead-lettered, in consumer group ``marks_group`` under ``rules``
        (``letter_marks``; None: not saved, every start sends them again)."""
        self.name, self.topic, self.lock = name, topic, lock
        self.refresh_s = refresh_s
        self._apply, self.size, self.details = apply, size, details
        self.dead_letter = dead_letter
        self.counts: Counter[str] = Counter()
        #: Keys whose latest record the table rejected. A record without a key is not counted
        #: here (no later record can replace it; a compacted topic refuses it anyway).
        self.rejected_keys: set[bytes] = set()
        self.recovered = threading.Event()  # read to the end offsets found at start
        self.stopping = threading.Event()
        #: Beaten each time the loop goes round and while it waits for its topic (``liveness``).
        self.pulse = Pulse()
        self.lag: dict[tuple[str, int], int] = {}
        self.consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                      metadata_max_age_ms=max(100, int(refresh_s * 1000)), **(tuning or {}), **client_kw)
        self.lag_meter = LagMeter(self.consumer, log)
        self.marks = LetterMarks(client_kw, marks_group, name, rules, every_s=refresh_s)

    def _asked(self, what: str, call: Callable[[], T]) -> T:
        """``call()`` (a client call that needs the broker), waited for on a thread of its own
        while this loop beats its pulse, and asked again while the broker does not answer.
        kafka-python waits for a topic's metadata as long as its metadata requests go
        unanswered, and raises when one fails (its request timeout, 30 s; at once when the
        broker refuses connections): a broker outage made the feed stop beating, then die,
        and the worker with it. An outage is neither a stall nor a failure: retriable client
        errors are asked again a second later (said once, and when the broker answers);
        others are raised. (A topic deleted under the feed also gives retriable errors: it
        waits for it as for the broker.) ``_Stopping`` when the worker stops
        meanwhile (a call on its way is left to end with the consumer's close)."""
        start, said = time.monotonic(), False
        while True:
            self.pulse.beat()
            asking = OnThread(call, f"{self.name}-table-{what}")
            while not asking.done.wait(ASK_BEAT_S):
                self.pulse.beat()
                if self.stopping.is_set():
                    raise _Stopping
                if not said and time.monotonic() - start >= ASK_SLOW_S:
                    log.warning("%s table: the broker has not answered for %.0f s (%s of topic %s); waiting for it",
                                self.name, time.monotonic() - start, what, self.topic)
                    said = True
            try:
                value = asking.result()
                break
            except KafkaError as exc:
                if not exc.retriable:
                    raise
                error = exc
            if not said:
                log.warning("%s table: the broker does not answer, or the topic is gone (%s of topic %s: %s); asking "
                            "again until it does", self.name, what, self.topic, error)
                said = True
            if self.stopping.wait(ASK_BEAT_S * 2):
                raise _Stopping
        if said:
            log.warning("%s table: the broker answered after %.0f s (%s of topic %s)", self.name,
                        time.monotonic() - start, what, self.topic)
        return value

    def _partitions(self) -> list[TopicPartition]:
        """The topic's partitions; waits (logging) while the topic does not exist."""
        warned = False
        while not self.stopping.is_set():
            parts = self._asked("partitions", lambda: self.consumer.partitions_for_topic(self.topic))
            if parts:
                return [TopicPartition(self.topic, p) for p in sorted(parts)]
            if not warned:
                log.error("%s table: topic %r does not exist; waiting for it (stream-lis topics create makes it); "
                          "this worker is not ready until then", self.name, self.topic)
                warned = True
            self.pulse.beat()
            self.stopping.wait(1.0)
        return []

    def apply(self, key: bytes | None, value: bytes | None, source: str, send: bool = True) -> str:
        """One record into the table; returns its outcome, counted (and dead-lettered when
        it is a rejection, unless ``send`` is False: a record below its partition's mark,
        dead-lettered before)."""
        outcome = self._apply(key, value)
        self.counts[outcome] += 1
        if outcome in APPLIED:
            if key is not None:
                self.rejected_keys.discard(key)
            return outcome
        if key is not None:
            self.rejected_keys.add(key)
        if send:
            detail = self.details.get(outcome, outcome) if value is not None else "a tombstone without a key"
            self.marks.sent(self.dead_letter(Invalid(outcome, detail, value or b""), source))
        return outcome

    def run(self) -> None:
        try:
            self._run()
        except _Stopping:
            pass
        finally:
            self.consumer.close()
            self.marks.close()

    def _run(self) -> None:
        tps = self._partitions()
        if not tps:
            return
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self.marks.load(tps, self.pulse.beat)
        end = self._asked("end offsets", lambda: self.consumer.end_offsets(tps))
        begin = self._asked("beginning offsets", lambda: self.consumer.beginning_offsets(tps))
        log.info("%s table: reading topic %s (%d partitions, up to %d records)", self.name, self.topic, len(tps),
                 sum(end[tp] - begin[tp] for tp in tps))
        t0, last_lag = time.monotonic(), 0.0
        last_look = t0
        todo = {tp for tp in tps if end[tp] > begin[tp]}
        while not self.stopping.is_set():
            self.pulse.beat()
            if time.monotonic() - last_look >= self.refresh_s:
                last_look = time.monotonic()
                tps = self._add_new_partitions(tps)
            if not todo and not self.recovered.is_set():
                log.info("%s table: %d entries loaded in %.1f s (%s)", self.name, self.size(), time.monotonic() - t0,
                         ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())) or "topic empty")
                self.recovered.set()
            batch = self.consumer.poll(timeout_ms=200)
            if batch:
                with self.lock:
                    for tp, msgs in batch.items():
                        self.marks.read(tp, msgs[0].offset, msgs[-1].offset + 1)
                        for m in msgs:
                            self.apply(m.key, m.value, f"{tp.topic}/{tp.partition}@{m.offset}",
                                       self.marks.fresh(tp, m.offset))
            self.marks.save()
            for tp in list(todo):
                # None: not known yet (kafka-python gives that while the broker does not answer)
                pos = self.consumer.position(tp, timeout_ms=POSITION_WAIT_MS)
                if pos is not None and pos >= end[tp]:
                    todo.discard(tp)
            now = time.monotonic()
            if now - last_lag >= 1.0:
                if self.lag_meter.measure():
                    self.lag = self.lag_meter.lag
                last_lag = now

    def _add_new_partitions(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        """The assignment extended by partitions added to the topic since (read from their
        beginning: their records are part of the table like any other's)."""
        known = {tp.partition for tp in tps}
        new = sorted(set(self._asked("partitions", lambda: self.consumer.partitions_for_topic(self.topic)) or ())
                     - known)
        if not new:
            return tps
        added = [TopicPartition(self.topic, p) for p in new]
        log.info("%s table: topic %s has new partitions %s; reading them from the beginning", self.name, self.topic,
                 ", ".join(map(str, new)))
        tps = [*tps, *added]
        self.consumer.assign(tps)  # keeps the positions of the partitions already assigned
        self.consumer.seek_to_beginning(*added)
        self.marks.load(added, self.pulse.beat)
        return tps


class _Table(Protocol):
    def update(self, raw: bytes, key: str | None = None) -> str | None: ...
    def delete(self, key: str) -> bool: ...


def _apply_to(table: _Table) -> Apply:
    """A record into ``table`` (the external probe: keyed by item id; the embedding table: a
    key per experiment, arm and item); a tombstone deletes what its key set."""

    def apply(key: bytes | None, value: bytes | None) -> str:
        k = key.decode("utf-8", "replace") if key is not None else None
        if value is None:
            if k is None:
                return "missing_field"
            return "deleted" if table.delete(k) else "absent"
        return table.update(value, key=k) or "upserted"

    return apply


def _rules(cfg: Config) -> str:
    """What decides which side records are rejected: the release, the reject reasons and the
    config they read. Dead-letter marks made under other rules are not trusted
    (``letter_marks``): a record accepted then may be rejected now."""
    said = msgspec.json.encode([__version__, sorted(PREFERENCE_REJECTS), sorted(EMBEDDING_REJECTS), cfg.limits,
                                cfg.probes.external, cfg.embeddings, cfg.experiments])
    return f"{__version__}/{zlib.crc32(said):08x}"


def feeds_for(stage: Any, cfg: Config, client_kw: dict[str, Any],
              dead_letter: InvalidSink) -> list[TableFeed]:
    """The feeds of an evaluation stage's tables read from topics; the stage waits for them
    before it evaluates."""
    t, tuning = cfg.kafka.topics, consumer_tuning(cfg.kafka)
    refresh_s = parse_duration(cfg.kafka.side_topic_refresh) / 1000
    marks, rules = f"{cfg.kafka.group_id}-tables", _rules(cfg)
    feeds = []
    probe = stage.external
    if probe is not None and cfg.probes.external.from_topic:
        feeds.append(TableFeed("preferences", t.preferences, _apply_to(probe), lambda: probe.n_items,
                               PREFERENCE_REJECTS, stage.lock, client_kw, dead_letter, tuning, refresh_s, marks, rules))
    table = stage.embeddings
    if table is not None and cfg.embeddings.from_topic:
        feeds.append(TableFeed("embeddings", t.embeddings, _apply_to(table), table.__len__, EMBEDDING_REJECTS,
                               stage.lock, client_kw, dead_letter, tuning, refresh_s, marks, rules))
    stage.inputs_ready = [f.recovered for f in feeds]
    return feeds
