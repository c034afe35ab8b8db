"""The compacted ``preferences`` topic, read into the ``external`` probe of the evaluation stage.

The topic holds the user's preference dataset, one record per item, keyed by item id
(``{"item_id": ..., "vector": [...]}`` or ``{"item_id": ..., "items": [...]}``); compaction
keeps the latest record of each item, and a record with a null value (a tombstone) deletes
it. Every evaluation stage needs the whole dataset, whichever arms it owns, so the feed reads
every partition, with no consumer group and no committed offsets: from the beginning, at every
start, like a global table.

Time semantics: the dataset is not in event time. The feed reads the topic to the end offsets
it found at start before the stage evaluates anything (``caught_up``; the worker is not ready
until then), so a restarted worker evaluates with the same dataset it had. After that an
update applies from the next evaluated chunk on, whatever the event time of the examples in
it: the dataset is "what the team knows now", as a later model snapshot would be.

A record the probe rejects (``REJECT_DETAILS``) is counted by reason and sent to the
dead-letter topic with its bytes and ``preferences/partition@offset``; the feed goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any, Callable

from kafka import KafkaConsumer, TopicPartition

from ...events import Invalid
from ...probes.external import REJECT_DETAILS, ExternalProbe
from .settings import consumer_tuning
from .topics import consumer_lag

log = logging.getLogger("stream_lis.preferences")

#: Outcomes of a preference record besides the rejection reasons (the metric's label values).
APPLIED = ("upserted", "deleted")


class PreferenceFeed:
    """Reads the topic into ``probe``, applying each poll under ``lock`` (the evaluation
    stage's: a chunk is evaluated with one version of the dataset, never half an update).

    ``recovered`` / ``stopping`` / ``lag`` / ``run`` are what the worker runs a stage by.
    """

    def __init__(self, topic: str, probe: ExternalProbe, lock: threading.Lock, client_kw: dict[str, Any],
                 dead_letter: Callable[[Invalid, str], None], tuning: dict[str, Any] | None = None) -> None:
        self.topic, self.probe, self.lock = topic, probe, lock
        self.dead_letter = dead_letter
        self.counts: Counter[str] = Counter()
        self.recovered = threading.Event()  # read to the end offsets found at start
        self.stopping = threading.Event()
        self.lag: dict[tuple[str, int], int] = {}
        self.consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                      **(tuning or {}), **client_kw)

    def _partitions(self) -> list[TopicPartition]:
        """The topic's partitions; waits (logging) while the topic does not exist."""
        warned = False
        while not self.stopping.is_set():
            parts = self.consumer.partitions_for_topic(self.topic)
            if parts:
                return [TopicPartition(self.topic, p) for p in sorted(parts)]
            if not warned:
                log.error("probes.external.from_topic: topic %r does not exist; waiting for it "
                          "(stream-lis topics create makes it); this worker is not ready until then", self.topic)
                warned = True
            self.stopping.wait(1.0)
        return []

    def apply(self, key: bytes | None, value: bytes | None, source: str) -> str:
        """One record into the probe; returns its outcome (``APPLIED`` or a reason)."""
        item = key.decode("utf-8", "replace") if key is not None else None
        if value is None:
            outcome = "deleted" if item is not None else "missing_field"
            if item is not None:
                self.probe.delete(item)
        else:
            outcome = self.probe.update(value, key=item) or "upserted"
        self.counts[outcome] += 1
        if outcome not in APPLIED:
            detail = REJECT_DETAILS.get(outcome, outcome) if value is not None else "a tombstone without a key"
            self.dead_letter(Invalid(outcome, detail, value or b""), source)
        return outcome

    def run(self) -> None:
        tps = self._partitions()
        if not tps:
            self.consumer.close()
            return
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        end = self.consumer.end_offsets(tps)
        begin = self.consumer.beginning_offsets(tps)
        log.info("reading topic %s (%d partitions, up to %d records) into the external probe",
                 self.topic, len(tps), sum(end[tp] - begin[tp] for tp in tps))
        t0, last_lag = time.monotonic(), 0.0
        todo = {tp for tp in tps if end[tp] > begin[tp]}
        while not self.stopping.is_set():
            if not todo and not self.recovered.is_set():
                log.info("%d items loaded in %.1f s (%s)", self.probe.n_items, time.monotonic() - t0,
                         ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())) or "topic empty")
                self.recovered.set()
            batch = self.consumer.poll(timeout_ms=200)
            if batch:
                with self.lock:
                    for tp, msgs in batch.items():
                        for m in msgs:
                            self.apply(m.key, m.value, f"{tp.topic}/{tp.partition}@{m.offset}")
            for tp in list(todo):
                if self.consumer.position(tp) >= end[tp]:
                    todo.discard(tp)
            now = time.monotonic()
            if now - last_lag >= 1.0:
                self.lag = consumer_lag(self.consumer)
                last_lag = now
        self.consumer.close()


def feed_for(stage: Any, cfg: Any, client_kw: dict[str, Any],
             dead_letter: Callable[[Invalid, str], None]) -> PreferenceFeed | None:
    """The feed of an evaluation stage whose external probe reads the topic (else None); the
    stage waits for it before evaluating."""
    probe = stage.external
    if probe is None or not cfg.probes.external.from_topic:
        return None
    feed = PreferenceFeed(cfg.kafka.topics.preferences, probe, stage.lock, client_kw, dead_letter,
                          consumer_tuning(cfg.kafka))
    stage.inputs_ready = feed.recovered
    return feed
