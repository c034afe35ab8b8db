"""The join stage: impressions + clicks in, each arm's records out to ``labelled``.

One ``Labeller`` per input partition (``impressions`` and ``clicks`` are co-partitioned by
impression id, and the range assignor gives a worker the same partitions of both). Its
watermark is the partition's own; heartbeats tell every ``labelled`` partition where each
input partition's watermark stands, so the evaluation stage can take the minimum.

The two topics of a partition are fetched independently, so one can run minutes of event time
ahead of the other. The stage therefore merges them by event time: a topic's records are
held until the other topic has been read past their event time (or is read to its end), and
released in offset order, so what is held is always a suffix of each topic and the
checkpointed offsets (the first held record of each topic) lose and repeat nothing.

The join only sees its partition, so it relies on producers keying both topics by
impression id. A record keyed otherwise is joined all the same (a consistent other key works
as well), but counted by topic and kind (``stream_lis_input_key_mismatch_total``) and logged:
where the two topics' keys differ, clicks land on other partitions than their impressions, and
would otherwise only show as orphan clicks and a lower CTR. Deployments that key both topics
alike by another field say so with ``kafka.input_keys = "any"``: then only records without a
key are counted.

Idle partitions (no record for ``kafka.idle_partition_timeout`` of wall time) are announced
as idle in their heartbeats, and the evaluation stage leaves them out of its minimum, so a
quiet partition never stalls the others. An idle partition that has had input also advances
its own watermark towards the wall clock minus the allowed lateness, at most to its largest
event time plus ``max(W, H)``: live traffic carries event times near the wall clock, so this
only closes windows no on-time event can reach, and at the end of a backfill it closes every
remaining window. (A backfill that pauses longer than the timeout sees records older than the
advanced watermark as late: raise the timeout for such replays.)

Recovery: every ``kafka.checkpoint_interval`` (and when a partition is revoked) the stage
flushes what it produced and snapshots each partition's labeller state with the input offsets
it reflects. A restarted owner seeks to those offsets; records it produces a second time are
dropped by the evaluation stage, which keeps each impression's records once. The periodic
checkpoints are encoded, compressed and sent in the background (``BackgroundSaver``): the
stage holds still only while it copies its labellers' state (``Labeller.freeze``). A
checkpoint's offsets are committed, and its watermark announced to the evaluation stage as
the partition's checkpointed one, only once the broker has acknowledged it; one that fails
is logged and counted, and the next interval tries again.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter, deque
from operator import itemgetter
from typing import Any, NamedTuple, Sequence

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.range import RangePartitionAssignor

from ...config import Config, parse_duration
from ...engine import decoder_for
from ...events import Invalid
from ...labeller import ArmRecord, FrozenLabeller, Labelled, LabelCounters, Labeller
from ...watermark import NEG_INF, POS_INF, idle_ends, idle_targets
from ..liveness import Membership, Pulse
from .checkpoints import BackgroundSaver, CheckpointStore, Snapshot, snapshot
from .delivery import Delivery
from .produce import dead_letter_sink
from .rebalance import coordinator_unknown, listener_for
from .settings import consumer_tuning
from .topics import STOP_COMMIT_S, LagMeter, can_checkpoint, commit_offsets, copartition_message, servers
from .wire import Envelope, arm_partition, encode_envelope, origin_of, slim

log = logging.getLogger("stream_lis.join")

#: An envelope larger than this (encoded) is split in two, so a message stays far below the
#: ``labelled`` topic's limit even with large MLLM embeddings inline; ``kafka.envelope_records``
#: caps its record count.
ENVELOPE_BYTES = 1 << 20

#: A record with a null value (a tombstone, as a compacting producer writes) on an input topic.
TOMBSTONE = Invalid("unparseable", "null value (a tombstone): an input event is one JSON object", b"")

#: Held record: (merge time, offset, event or Invalid, original bytes, topic rank); rank 0 is
#: ``impressions``, 1 ``clicks`` (ties release impressions first). The merge time is the
#: largest event time of its topic's partition up to this record: the two topics are merged by
#: it, so each topic's records keep their offset order. (Sorting by the event time itself put
#: a late record before newer ones whenever they were released together: whether it counted as
#: late depended on how the records were fetched.)
_TS, _OFF, _EV, _RAW, _RANK = range(5)
_release_order = itemgetter(_TS, _RANK, _OFF)

#: Seconds between two measurements of the consumer's lag (one request to the broker).
LAG_EVERY_S = 0.25
#: How long a periodic checkpoint waits for the stage's sends to reach the broker before it
#: is put off to the next interval.
CHECKPOINT_FLUSH_S = 2.0
#: A lag measured longer ago than this no longer says whether a partition is read to its end
#: (two measurements' timeouts: a slow broker still answers within it).
LAG_CURRENT_S = 2 * LagMeter.TIMEOUT_MS / 1000
#: Seconds between two log lines about input records not keyed by their impression id.
KEY_WARN_EVERY_S = 60.0


class _Sources(Sequence[str]):
    """Where each released event came from (``topic/partition@offset``), built only for the
    few a dead letter needs: the labeller indexes it when it rejects an event."""

    __slots__ = ("names", "p", "ranks", "offsets")

    def __init__(self, names: tuple[str, str], p: int, ranks: list[int], offsets: list[int]) -> None:
        self.names, self.p, self.ranks, self.offsets = names, p, ranks, offsets

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        return f"{self.names[self.ranks[k]]}/{self.p}@{self.offsets[k]}"


def _encode(lab: FrozenLabeller, offsets: dict[str, int | None]) -> bytes:
    """A join partition's checkpoint (on the saver's thread: the stage went on meanwhile)."""
    return snapshot({"labeller": lab.state(), "offsets": offsets})


#: Seconds after an assignment during which a partition's heartbeats go every interval
#: (``JoinStage._forget_told``): longer than the group's session timeout (10 s), within which a
#: worker that lost the partition without noticing may still send.
ASSIGNED_EAGER_S = 30.0


def _told_state(env: Envelope) -> tuple:
    """What an envelope tells its ``labelled`` partition of its input partition's clock (as the
    evaluation stage reads it: records make the partition busy)."""
    return env.watermark, env.idle and not env.records, env.checkpointed, env.ended


class _Checkpointed(NamedTuple):
    """Stands, among a checkpoint's offsets, for the partition's watermark it saved."""

    partition: int


class JoinStage(ConsumerRebalanceListener):
    def __init__(self, cfg: Config, client_kw: dict[str, Any], producer: KafkaProducer, store: CheckpointStore) -> None:
        k = cfg.kafka
        self.cfg, self.client_kw, self.producer, self.store = cfg, client_kw, producer, store
        self.t = k.topics
        #: The labels and dead letters sent, watched: a checkpoint never claims input whose
        #: output was lost (``delivery``).
        self.delivery = Delivery()
        self._dead_letter = dead_letter_sink(producer, self.t.dead_letters, self.delivery)
        self.lock = threading.Lock()
        self.labellers: dict[int, Labeller] = {}
        self.last_input: dict[int, float] = {}
        # Per partition and topic: decoded records not yet released, in offset order, and the
        # largest event time read from the topic so far.
        self.held: dict[int, dict[str, deque]] = {}
        self.read_ts: dict[int, dict[str, int]] = {}
        self.read_at: dict[int, dict[str, float]] = {}  # monotonic time of the last read, per topic
        self.ckpt_wm: dict[int, int] = {}  # watermark of each partition's last checkpoint
        #: Partitions whose input ended (``idle_ends``) at this event time, said in their envelopes.
        self._ended: dict[int, int] = {}
        self._origin = origin_of(cfg.kafka.group_id)
        # Per partition and topic: offset after the last record read (None: nothing read and
        # no checkpoint, so a restart starts where auto_offset_reset says). Kept here rather
        # than asked of the consumer: see ``_checkpoint``.
        self.next_off: dict[int, dict[str, int | None]] = {}
        self.lag: dict[tuple[str, int], int] = {}
        self._lag_at = 0.0  # monotonic time of the lag measurement
        self.rebalances = 0
        self.checkpoints = 0
        #: Beaten each time the loop goes round, and while it restores or saves in a rebalance (``liveness``).
        self.pulse = Pulse()
        self.saver = BackgroundSaver(store, "join-checkpoints", on_saved=self._saved, progress=self.pulse.beat)
        #: Whether the consumer holds an assignment, and since when not (``liveness``).
        self.membership = Membership()
        #: Checkpoints saved in the foreground (revocation, shutdown) that failed.
        self.foreground_failures = 0
        #: (topic, "unkeyed" | "other_key") -> input records not keyed by their impression id
        #: (this process, since start: a record re-read after a restart is counted again).
        #: Exported from 0, so the first mismatches after a start show in ``increase()``.
        self.key_mismatch: Counter[tuple[str, str]] = Counter(
            {(t, kind): 0 for t in (self.t.impressions, self.t.clicks) for kind in ("unkeyed", "other_key")})
        self._key_warned: dict[tuple[str, str], float] = {}
        self.recovered = threading.Event()
        self.stopping = threading.Event()
        self._decode = decoder_for(cfg)
        self._declared = {e.name: e.arms for e in cfg.experiments} or None
        self._idle_s = parse_duration(k.idle_partition_timeout) / 1000
        self._hold_s = parse_duration(k.cross_topic_hold) / 1000
        self._hb_s = parse_duration(k.heartbeat_interval) / 1000
        self._repeat_s = parse_duration(k.heartbeat_repeat) / 1000
        #: (input partition, labelled partition) -> what that labelled partition was last told
        #: of the input partition's clock (``_told_state``) and when (monotonic): a heartbeat
        #: saying nothing new is left out until ``kafka.heartbeat_repeat`` (see ``_heartbeat``).
        self._told: dict[tuple[int, int], tuple[tuple, float]] = {}
        #: Input partition -> until when (monotonic) its heartbeats go every interval (``_forget_told``).
        self._eager: dict[int, float] = {}
        self._ckpt_s = parse_duration(k.checkpoint_interval) / 1000
        self._labelled_parts = 0
        self._envelope_records = k.envelope_records
        self._names = (self.t.impressions, self.t.clicks)
        self._rank = {self.t.impressions: 0, self.t.clicks: 1}
        #: What is wrong with the input topics' partition counts as this worker last saw them
        #: (None: nothing); the start refuses unequal counts, this watches for partitions added
        #: to one topic while workers run.
        self.copartition_problem: str | None = None
        # The group sees partitions added to the input topics when its metadata is refreshed:
        # as often as the side topics' (kafka-python's default is 5 minutes).
        self.consumer = KafkaConsumer(
            group_id=f"{k.group_id}-join", enable_auto_commit=False, auto_offset_reset="earliest",
            partition_assignment_strategy=[RangePartitionAssignor],
            metadata_max_age_ms=max(100, parse_duration(k.side_topic_refresh)),
            session_timeout_ms=10_000, heartbeat_interval_ms=1_000, max_poll_interval_ms=parse_duration(k.rebalance_timeout),
            **consumer_tuning(k), **client_kw)
        self.lag_meter = LagMeter(self.consumer, log)

    # -- rebalance ---------------------------------------------------------------------
    def on_partitions_revoked(self, revoked: Any) -> None:
        try:
            self._revoke(revoked)
        finally:
            self.membership.revoked()  # joining again from now (the save above is not the join)

    def _revoke(self, revoked: Any) -> None:
        # (The stage's thread waits in its poll while the listener runs: the labellers cannot change meanwhile.)
        parts = {tp.partition for tp in revoked} & set(self.labellers)
        save = bool(parts) and can_checkpoint(self.lag_meter, "partitions revoked")
        if save:
            self.delivery.flush(self.producer)  # without the lock (see run); the checkpoint's own flush is then quick
        self.pulse.beat()  # each wait of a revocation is bounded; together they may not be
        with self.lock:
            if save:
                self._checkpoint(parts)
            for p in parts:
                # Its counts travel with its checkpoint to the next owner, who reports them.
                self.labellers.pop(p)
                self.last_input.pop(p, None)
                self.held.pop(p, None)
                self.read_ts.pop(p, None)
                self.read_at.pop(p, None)
                self.ckpt_wm.pop(p, None)
                self.next_off.pop(p, None)
            self._forget_told(parts)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.membership.assigned()  # restoring them has a pulse of its own
        with self.lock:
            self.rebalances += 1
            parts = sorted({tp.partition for tp in assigned} - set(self.labellers))
            saved = self.store.load_all("join:", [f"join:{p}" for p in parts], self.pulse.beat) if parts else {}
            t = self.cfg.time
            self._forget_told(parts, assigned=True)
            for p in parts:
                lab = Labeller(t.attribution_window_ms, t.allowed_lateness_ms, self.cfg.limits.max_pending_impressions,
                               self._dead_letter, parse_duration(self.cfg.limits.max_future_skew),
                               max_arms=self.cfg.limits.max_arms, arm_idle_ms=t.experiment_idle_timeout_ms)
                ck = saved.get(f"join:{p}")
                self.pulse.beat()  # a partition of a million pending impressions loads in seconds
                self.next_off[p] = {self.t.impressions: None, self.t.clicks: None}
                if ck is not None:
                    lab.load(ck["labeller"])
                    for topic, off in ck["offsets"].items():
                        if off is not None:
                            self.consumer.seek(TopicPartition(topic, p), off)
                        self.next_off[p][topic] = off
                    log.info("join partition %d resumed from checkpoint at %s", p, ", ".join(
                        f"{topic}@{'its start' if off is None else off}" for topic, off in ck["offsets"].items()))
                self.labellers[p] = lab
                self.ckpt_wm[p] = lab.watermark.value
                self.last_input[p] = 0.0 if ck is None else time.monotonic()
                self.held[p] = {self.t.impressions: deque(), self.t.clicks: deque()}
                self.read_ts[p] = {self.t.impressions: NEG_INF, self.t.clicks: NEG_INF}
                self.read_at[p] = {self.t.impressions: 0.0, self.t.clicks: 0.0}
            self.recovered.set()

    def _check_copartitioned(self) -> None:
        """Say (once per pair of counts, as an error) when the input topics' partition counts
        differ, as the consumer's metadata has them: a partition added to one of them while
        the workers run. Clicks then miss their impressions from that moment on, and nothing
        else would show it but a falling CTR. Partitions cannot be removed, so the problem
        lasts until the other topic gets as many."""
        counts = [len(self.consumer.partitions_for_topic(name) or ()) for name in self._names]
        problem = copartition_message(*self._names, *counts, when="now; clicks are missing their impressions meanwhile",
                                      bootstrap=servers(self.client_kw))
        if problem is not None and problem != self.copartition_problem:
            log.error("%s", problem)
        self.copartition_problem = problem

    # -- processing --------------------------------------------------------------------
    def _send(self, src: int, before: int, wm: int, recs: list[ArmRecord]) -> None:
        """One message per ``labelled`` partition with every record bound for it, in order
        (more when they exceed ``kafka.envelope_records`` or ``ENVELOPE_BYTES``).

        ``wm`` is the source's watermark once these records were made, ``before`` its
        watermark before. Only a partition's last message carries ``wm``: the evaluation stage
        releases examples as each message arrives, and a batch caught up from a backlog spans
        hours of event time, so an earlier message saying ``wm`` released examples whose
        future window (the later messages' impressions and clicks) was still unread, and the
        probes saw a cut-off behaviour log (LIS far too low on a backlog)."""
        if not recs:
            return
        n = self._labelled_parts
        by_part: dict[int, list[ArmRecord]] = {}
        part_of: dict[tuple[str, str], int] = {}  # a handful of arms: look each up once
        for rec in recs:
            if type(rec) is Labelled:
                imp = rec.example.impression
            else:
                imp = rec.impression
                rec = slim(rec)
            key = (imp.experiment, imp.arm)
            part = part_of.get(key)
            if part is None:
                part = part_of[key] = arm_partition(key, n, self._declared)
            batch = by_part.get(part)
            if batch is None:
                by_part[part] = [rec]
            else:
                batch.append(rec)
        step, ckpt = self._envelope_records, self.ckpt_wm[src]
        for part, batch in by_part.items():
            for k in range(0, len(batch), step):
                last = k + step >= len(batch)
                self._send_envelope(part, Envelope(src, wm if last else before, batch[k:k + step], False, ckpt,
                                                   self._ended.get(src), self._origin), before)

    def _send_envelope(self, part: int, env: Envelope, before: int) -> None:
        data = encode_envelope(env)
        if len(data) > ENVELOPE_BYTES and len(env.records) > 1:
            half = len(env.records) // 2  # the first half says the watermark before (see _send)
            self._send_envelope(part, Envelope(env.src, before, env.records[:half], False, env.checkpointed,
                                               env.ended, env.origin), before)
            self._send_envelope(part, Envelope(env.src, env.watermark, env.records[half:], False, env.checkpointed,
                                               env.ended, env.origin), before)
            return
        self.delivery.watch(self.producer.send(self.t.labelled, partition=part, value=data), self.t.labelled)
        self._told[(env.src, part)] = (_told_state(env), time.monotonic())

    def _lag_current(self) -> bool:
        """Whether the last lag measurement says where the input stands now: the broker
        answers and it is recent. During an outage the last lag can read 0 while records are
        waiting on the broker: partitions are then neither idle nor read to their end, or
        their clocks would move on by the wall clock and the waiting records come out late."""
        return self.lag_meter.answering and time.monotonic() - self._lag_at <= LAG_CURRENT_S

    def _idle(self, p: int) -> bool:
        """No input for the timeout while caught up (a partition we are behind on is busy,
        not idle, however long the consumer spends on the others). "Caught up" must come from
        a lag measured after the partition's last input: an older one may predate records
        still on their way."""
        last = self.last_input.get(p, 0.0)
        caught_up = self._lag_at > last and self._lag_current() and all(
            self.lag.get((topic, p), 1) == 0 and not self.held[p][topic] for topic in (self.t.impressions, self.t.clicks))
        return caught_up and time.monotonic() - last >= self._idle_s

    def _forget_told(self, parts: Any, assigned: bool = False) -> None:
        """What these input partitions told the evaluation is no longer ours to go by: another
        worker owned them (or will), and told it other clocks. An assigned partition's clock
        is told at once, then every heartbeat for ``ASSIGNED_EAGER_S``: envelopes from its
        previous owner (still buffered there, or sent by a worker that has not yet noticed
        it lost the partition) can land after ours, and would stand until the repeat."""
        self._told = {k: v for k, v in self._told.items() if k[0] not in parts}
        if assigned:
            until = time.monotonic() + ASSIGNED_EAGER_S
            self._eager.update({p: until for p in parts})

    def _not_told(self, key: tuple[int, int], _exc: Exception) -> None:
        """A heartbeat that failed to reach its partition told it nothing (producer's thread)."""
        self._told.pop(key, None)

    def _heartbeat(self) -> None:
        """Tell every ``labelled`` partition where each input partition's clock stands, where
        it was not told so already: a partition that just had records with the current
        watermark, or a heartbeat saying the same, is left out until ``kafka.heartbeat_repeat``
        has passed (an evaluation partition's new owner without a checkpoint learns the clocks
        from the repeats). Quiet partitions' clocks stand still, so an idle deployment sends a
        message per pair every ``heartbeat_repeat`` instead of every ``heartbeat_interval``."""
        now = time.monotonic()
        told, repeat = self._told, self._repeat_s
        for src, lab in self.labellers.items():
            env = Envelope(src, lab.watermark.value, [], self._idle(src), self.ckpt_wm[src], self._ended.get(src),
                           self._origin)
            state, data = _told_state(env), None
            eager = self._eager.get(src, 0.0) > now
            for p in range(self._labelled_parts):
                last = told.get((src, p))
                if not eager and last is not None and last[0] == state and now - last[1] < repeat:
                    continue
                if data is None:
                    data = encode_envelope(env)
                future = self.producer.send(self.t.labelled, partition=p, value=data)
                told[(src, p)] = (state, now)
                future.add_errback(self._not_told, (src, p))

    def _saved(self, _size: int) -> None:
        self.checkpoints += 1

    @property
    def checkpoint_failures(self) -> int:
        return self.saver.failed + self.foreground_failures

    def _snapshot(self, parts: set[int]) -> tuple[list[tuple[str, Snapshot]], dict[Any, int]]:
        """The partitions' labellers, frozen (copied; encoded later, by whoever saves them),
        with the input offsets they reflect; and what to apply once the checkpoint is
        acknowledged: those offsets (to commit) and each partition's watermark
        (``_Checkpointed``: to announce as checkpointed).

        Runs under ``self.lock``, also from the rebalance listener, which the consumer's IO
        loop awaits (``rebalance``): so it asks the consumer nothing (``position`` may wait on
        that loop, which waits for the listener). Offsets are our own count. What
        was produced before is flushed first: a checkpoint must not claim input whose output
        is not durable: if some was lost, ``DeliveryFailed`` (no checkpoint).
        """
        self.delivery.flush(self.producer)
        snaps, acked = [], {}
        for p in sorted(parts):
            offs = {}
            for topic in (self.t.impressions, self.t.clicks):
                held = self.held[p][topic]
                offs[topic] = held[0][_OFF] if held else self.next_off[p][topic]
            lab = self.labellers[p]
            snaps.append((f"join:{p}", functools.partial(_encode, lab.freeze(), offs)))
            acked.update({TopicPartition(topic, p): off for topic, off in offs.items() if off is not None})
            acked[_Checkpointed(p)] = lab.watermark.value
        return snaps, acked

    def _apply_acknowledged(self, acked: dict[Any, int]) -> dict[TopicPartition, int]:
        """Announce the acknowledged checkpoints' watermarks; their offsets, to commit (the
        partitions still owned only). Under ``self.lock``."""
        commit = {}
        for k, v in acked.items():
            if k.partition not in self.labellers:
                continue
            if type(k) is _Checkpointed:
                self.ckpt_wm[k.partition] = max(self.ckpt_wm.get(k.partition, NEG_INF), v)
            else:
                commit[k] = v
        return commit

    def _checkpoint(self, parts: set[int]) -> dict[TopicPartition, int]:
        """Save the partitions' checkpoint now, in the foreground (revocation, shutdown);
        returns the offsets for the caller to commit once it has released the lock. A failure
        is logged and counted: the next owner resumes from the previous checkpoint."""
        self.saver.wait()  # one on its way comes first: this newer one must overwrite it
        self.pulse.beat()
        commit = self._apply_acknowledged(self.saver.acknowledged())
        snaps, acked = self._snapshot(parts)
        try:
            for key, raw in snaps:
                self.pulse.beat()
                self.store.save_snapshot(key, raw)
        except Exception:  # noqa: BLE001 - the stage must stop cleanly, or hand its partitions over
            self.foreground_failures += 1
            log.exception("checkpoint of join partitions %s not saved: their next owner resumes from the "
                          "previous one (repeated records are dropped by the evaluation stage)", sorted(parts))
            return commit
        self.checkpoints += 1
        commit.update(self._apply_acknowledged(acked))
        return commit

    def _read(self, batch: dict) -> None:
        """Decode what was fetched into the per-topic queues (invalid records go at once)."""
        decode = self._decode
        by_id = self.cfg.kafka.input_keys == "impression_id"  # else only unkeyed records are counted
        for tp, msgs in batch.items():
            p = tp.partition
            lab = self.labellers.get(p)
            if lab is None:
                continue
            topic = tp.topic
            held, rank = self.held[p][topic], self._rank[topic]
            top = self.read_ts[p][topic]
            append = held.append
            values = [m.value if m.value is not None else b"" for m in msgs]
            for m, raw, ev in zip(msgs, values, decode(values)):
                if m.value is None:  # msgspec would say "Input data was truncated"
                    ev = TOMBSTONE
                if type(ev) is Invalid:
                    if held:  # keep offset order: it is rejected when its turn comes
                        append((top, m.offset, ev, raw, rank))
                    else:
                        lab.reject(ev, f"{topic}/{p}@{m.offset}")
                    continue
                key = m.key
                if key is None or (by_id and key != ev.impression_id.encode()):
                    self._mis_keyed(topic, p, m.offset, key, ev.impression_id)
                ts = ev.ts
                if ts > top:
                    top = ts
                append((top, m.offset, ev, raw, rank))
            self.read_ts[p][topic] = top
            self.next_off[p][topic] = msgs[-1].offset + 1
            self.last_input[p] = self.read_at[p][topic] = time.monotonic()
            self._ended.clear()  # input again: no partition's input has ended (``idle_ends``)

    def _mis_keyed(self, topic: str, p: int, offset: int, key: bytes | None, impression_id: str) -> None:
        """Count (and say, once a minute per topic and kind) a record not keyed by its
        impression id. It is still joined: keyed consistently by something else on both topics
        it meets its clicks all the same. But the join only sees one partition, so where the
        two topics' keys differ, a click is read on another partition than its impression: an
        orphan, and the impression a false negative, which nothing else would show."""
        kind = "unkeyed" if key is None else "other_key"
        self.key_mismatch[(topic, kind)] += 1
        now = time.monotonic()
        if now - self._key_warned.get((topic, kind), -KEY_WARN_EVERY_S) >= KEY_WARN_EVERY_S:
            self._key_warned[(topic, kind)] = now
            log.warning("%s/%d@%d is %s, not by its impression_id %r (%d such records on %s so far): producers must key "
                        "impressions and clicks by impression id, or a click and its impression can be read on different "
                        "partitions and never join (stream_lis_input_key_mismatch_total)", topic, p, offset,
                        "unkeyed" if key is None else f"keyed {key[:64]!r}", impression_id,
                        self.key_mismatch[(topic, kind)], topic)

    def _release(self) -> None:
        """Process, per partition, each topic's prefix the other topic has been read past."""
        now = time.monotonic()
        current = self._lag_current()
        for p, lab in self.labellers.items():
            queues = self.held[p]
            limits = {}
            for topic, other in ((self.t.impressions, self.t.clicks), (self.t.clicks, self.t.impressions)):
                # The other topic is done when it is read to its end (by a lag measured after
                # its last read), holds nothing, and has been quiet for kafka.cross_topic_hold:
                # caught up alone is not enough, as a producer sends the two topics' batches
                # apart, and on a fast replay that gap is minutes of event time.
                last = self.read_at[p][other]
                done = (self._lag_at > last and now - last >= self._hold_s and self.lag.get((other, p), 1) == 0
                        and not queues[other] and current)
                limits[topic] = POS_INF if done else self.read_ts[p][other]
            ready: list = []
            for topic, q in queues.items():
                limit = limits[topic]
                if limit == POS_INF:  # the other topic is read to its end: all of it
                    ready.extend(q)
                    q.clear()
                    continue
                while q and q[0][_TS] <= limit:
                    ready.append(q.popleft())
            if not ready:
                continue
            ready.sort(key=_release_order)  # merge time, topic, offset: each topic in offset order
            events, raws, ranks, offsets = [], [], [], []
            for ts, off, ev, raw, rank in ready:
                if type(ev) is Invalid:
                    lab.reject(ev, f"{self._names[rank]}/{p}@{off}")
                else:
                    events.append(ev)
                    raws.append(raw)
                    ranks.append(rank)
                    offsets.append(off)
            before = lab.watermark.value
            recs = lab.process(events, "kafka", raws, _Sources(self._names, p, ranks, offsets)) if events else []
            self._send(p, before, lab.watermark.value, recs)

    def _advance_idle(self) -> None:
        t = self.cfg.time
        # Only a partition that has had input moves on its own: one that never had any stays
        # put (and idle), or a backfill arriving later would all be late. How far: idle_targets.
        seen = {p: lab.watermark.max_ts for p, lab in self.labellers.items() if lab.watermark.max_ts > NEG_INF}
        idle = {p for p in seen if self._idle(p)}
        wall, reach = int(time.time() * 1000), max(t.attribution_window_ms, t.horizon_ms) + 1
        targets = idle_targets(seen, idle, wall, t.allowed_lateness_ms, reach)
        # Said on every envelope of an ended partition (the examples its jump releases
        # included): the evaluation stage keeps examples whose window the end cut out of the
        # AUCs. A partition that never had input ended before anything (it moves no end).
        ended = idle_ends(seen, idle, wall, t.allowed_lateness_ms, reach)
        if ended:
            ended.update({p: NEG_INF for p in self.labellers if p not in seen})
        just_ended = bool(ended) and not self._ended
        self._ended = ended
        if just_ended:
            last = max(ended.values())
            log.info("input ended: every partition idle, the wall clock %.1f h past the last event (%s); the "
                     "windows reaching past it close on data that stops there: their examples are learnt from "
                     "and kept out of the AUCs (stream_lis_truncated_examples_total)", (wall - last) / 3.6e6,
                     time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(last / 1000)))
            # Every partition says its end before any of them jumps: the evaluation stage
            # releases as soon as one jumped partition's envelope moves its clock, and an
            # example released before the last partition's end arrived counted as complete.
            # One producer, one labelled partition: these arrive before the jumps' envelopes.
            self._heartbeat()
        for p, target in targets.items():
            lab = self.labellers[p]
            if target > lab.watermark.value:
                before = lab.watermark.value
                recs = lab.advance_to(target)
                self._send(p, before, lab.watermark.value, recs)

    def run(self) -> None:
        self.membership.subscribed()
        self.consumer.subscribe([self.t.impressions, self.t.clicks], listener=listener_for(self, "join"))
        self._labelled_parts = len(self.consumer.partitions_for_topic(self.t.labelled) or ()) or self.cfg.kafka.partitions
        last_hb = last_ck = last_lag = time.monotonic()
        # The rebalance listener takes self.lock while the consumer's IO loop awaits it
        # (``rebalance``): the consumer calls that wait on that loop (commit, lag) are made
        # without the lock.
        while not self.stopping.is_set():
            self.pulse.beat()
            self.delivery.check()
            batch = self.consumer.poll(timeout_ms=200)
            if self.membership.since is not None and (not self.lag_meter.answering or coordinator_unknown(self.consumer)):
                self.membership.paused()  # no join goes on while the broker is away
            now = time.monotonic()
            # None while the broker does not answer: it would not take one.
            checkpoint = (now - last_ck >= self._ckpt_s and bool(self.labellers) and not self.saver.busy()
                          and self.lag_meter.answering)
            if checkpoint:
                # What was sent must be on the broker before a checkpoint claims its input.
                # Waited for here, without the lock (a scrape takes it), and briefly: a broker
                # that does not answer postpones the checkpoint, not the stage or its stop.
                checkpoint = self.delivery.try_flush(self.producer, CHECKPOINT_FLUSH_S)
                if not checkpoint:
                    last_ck = now  # put off to the next interval
            with self.lock:
                # Frozen here, under the lock, before the batch is read (its sends are not
                # flushed yet); encoded, compressed and sent by the saver while the stage goes
                # on. An interval whose previous checkpoint is still on its way is skipped.
                if checkpoint and self.labellers:
                    self.saver.submit(*self._snapshot(set(self.labellers)))
                    last_ck = now
                if batch:
                    self._read(batch)
                self._release()
                self._advance_idle()
                if now - last_hb >= self._hb_s:
                    self._heartbeat()
                    last_hb = now
                    if self.labellers:  # the topics exist: their metadata is cached, no request
                        self._check_copartitioned()
                committed = self._apply_acknowledged(self.saver.acknowledged())
            commit_offsets(self.consumer, committed, log)
            # Often: whether a partition is read to its end gates releases and idleness.
            if now - last_lag >= LAG_EVERY_S:
                measured = time.monotonic()
                if self.lag_meter.measure():
                    self.lag, self._lag_at = self.lag_meter.lag, measured
                last_lag = now
        # Asked before the lock: a broker that does not answer takes up to 5 s to say so.
        save = bool(self.labellers) and can_checkpoint(self.lag_meter, "stopping", ask=True)
        with self.lock:
            committed = self._checkpoint(set(self.labellers)) if save and self.labellers else {}
        commit_offsets(self.consumer, committed, log, wait_s=STOP_COMMIT_S)
        self.consumer.close()

    def counters(self) -> LabelCounters:
        out = LabelCounters()
        for lab in self.labellers.values():
            out = out.merge(lab.counters)
        return out
