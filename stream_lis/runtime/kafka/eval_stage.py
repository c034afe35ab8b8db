"""The evaluation stage: each ``labelled`` partition's arms, evaluated on one worker.

Every arm of a partition (its behaviour log, look-ahead buffer, probes, learners and AUC
windows: an ``ArmSet``) lives on the worker that owns the partition. Its watermark is the
minimum over the join stage's input partitions of the watermarks they reported (records and
heartbeats carry them), so an example is released only when every input partition has passed
its horizon.

Exactly-once effect without transactions: the stage checkpoints each partition's arms with
the ``labelled`` offset they reflect, and drops a record it has already applied (the join
stage may send an impression's records again after its own restart): each impression is
seen, clicked and labelled at most once per arm. What was applied is remembered until every
source's *checkpointed* watermark has passed it (minus the attribution window and the
lateness): a source that restarts repeats nothing older than its last checkpoint.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Sequence

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from ...arms import ArmKey, ArmSet
from ...config import Config, parse_duration
from ...embedding_table import EmbeddingTable, build_embeddings
from ...labeller import Labelled, Seen
from ...probes import ExternalProbe, Probe, build_probes
from ...watermark import NEG_INF
from ..liveness import Membership, Pulse
from .checkpoints import BackgroundSaver, CheckpointStore, Snapshot, snapshot
from ...freshness import ChunkDeadline
from .rebalance import coordinator_unknown, listener_for
from .settings import consumer_tuning
from .topics import LABELLED_MAX_BYTES, STOP_COMMIT_S, LagMeter, can_checkpoint, commit_offsets
from .wire import decode_envelope, origin_of

log = logging.getLogger("stream_lis.eval")

#: About this many arm records are applied and released per hold of the stage's lock.
SLICE_RECORDS = 4000


#: Dedupe's bit per arm-record kind.
SEEN, CLICKED, LABELLED = 1, 2, 4


class Dedupe:
    """Remembers which records (seen, clicked, labelled) of each impression were applied, for
    as long as a repeat can still arrive. One dict entry per impression, its kinds as bits:
    this is on the path of every record."""

    def __init__(self, margin_ms: int) -> None:
        self.keep_ms = margin_ms
        self.seen: dict[str, int] = {}
        self.order: deque[tuple[int, str]] = deque()  # (impression ts, id), first record first

    def first(self, bit: int, iid: str, ts: int) -> bool:
        """True the first time the ``bit`` record of impression ``iid`` comes (apply it)."""
        m = self.seen.get(iid)
        if m is None:
            self.seen[iid] = bit
            self.order.append((ts, iid))
            return True
        if m & bit:
            return False
        self.seen[iid] = m | bit
        return True

    def prune(self, floor: int) -> None:
        """Forget impressions older than ``floor`` minus the margin."""
        order, seen, limit = self.order, self.seen, floor - self.keep_ms
        while order and order[0][0] < limit:
            seen.pop(order.popleft()[1], None)

    def frozen(self) -> "Dedupe":
        """A copy for a checkpoint, pickled later on the saver's thread. Copying the two
        containers is a C loop: about 20 ms at 430k impressions, where pickling them while the
        stage holds still took 250 ms."""
        copy = Dedupe.__new__(Dedupe)
        copy.__dict__.update(self.__dict__, seen=self.seen.copy(), order=self.order.copy())
        return copy

    def __setstate__(self, state: dict) -> None:
        if isinstance(state.get("seen"), set):  # a checkpoint from when keys were (kind, id) pairs
            bits = {"s": SEEN, "c": CLICKED, "l": LABELLED}
            seen: dict[str, int] = {}
            order: deque[tuple[int, str]] = deque()
            for ts, kind, iid in state["order"]:
                if iid not in seen:
                    order.append((ts, iid))
                seen[iid] = seen.get(iid, 0) | bits[kind]
            state = {**state, "seen": seen, "order": order}
        self.__dict__.update(state)


class PartitionState:
    def __init__(self, cfg: Config, keep_ms: int, probes: Sequence[Probe], embeddings: EmbeddingTable | None) -> None:
        self.arms = ArmSet(cfg, lambda: probes, embeddings)
        self.src_wm: dict[int, int] = {}
        self.src_idle: dict[int, bool] = {}
        self.src_ckpt: dict[int, int] = {}
        #: Input partitions whose input ended, at this event time (``Envelope.ended``).
        self.src_end: dict[int, int | None] = {}
        self.dedupe = Dedupe(keep_ms)
        self.duplicates = 0
        #: Offset after the last ``labelled`` message applied (None: none yet, no checkpoint).
        self.next_offset: int | None = None
        #: Partial chunks waiting for the freshness deadline (wall clock; not checkpointed).
        self.deadline = ChunkDeadline(parse_duration(cfg.runtime.max_batch_delay) / 1000)


def _encode(state: dict, arms: dict[ArmKey, Callable[[], bytes]]) -> bytes:
    """An evaluation partition's checkpoint (on the saver's thread: the stage went on)."""
    return snapshot({**state, "arms": {key: encode() for key, encode in arms.items()}})


class EvalStage(ConsumerRebalanceListener):
    def __init__(self, cfg: Config, client_kw: dict[str, Any], store: CheckpointStore) -> None:
        k = cfg.kafka
        self.cfg, self.store = cfg, store
        self.t = k.topics
        self.lock = threading.Lock()
        self.parts: dict[int, PartitionState] = {}
        self.lag: dict[tuple[str, int], int] = {}
        self.rebalances = 0
        self.checkpoints = 0
        self.checkpoint_bytes = 0
        #: Beaten each time the loop goes round, and while it restores or saves in a rebalance (``liveness``).
        self.pulse = Pulse()
        self.saver = BackgroundSaver(store, "eval-checkpoints", on_saved=self._saved, progress=self.pulse.beat)
        #: Whether the consumer holds an assignment, and since when not (``liveness``).
        self.membership = Membership()
        #: Checkpoints saved in the foreground (revocation, shutdown) that failed.
        self.foreground_failures = 0
        self.last_evaluation_unix: float | None = None
        self.recovered = threading.Event()
        self.stopping = threading.Event()
        # Probes hold no per-arm state: one set serves every partition's arms, and so does one
        # embedding table (both fed from their topics under self.lock, when so configured).
        self.probes = build_probes(cfg.probes, topic_fed=cfg.probes.external.from_topic)
        self.embeddings = build_embeddings(cfg, topic_fed=cfg.embeddings.from_topic)
        #: Set once each table the stage evaluates with is loaded (a topic's feed sets its
        #: event when it has read the topic to its end); evaluation waits for them.
        self.inputs_ready: list[threading.Event] = []
        t = cfg.time
        self._keep_ms = t.attribution_window_ms + t.allowed_lateness_ms
        self._ckpt_s = parse_duration(k.checkpoint_interval) / 1000
        self._delay_s = parse_duration(cfg.runtime.max_batch_delay) / 1000
        self._inputs = 0
        self._chunks = 0
        self._origin = origin_of(k.group_id)
        #: Envelopes of another deployment read from a shared labelled topic (ignored).
        self.foreign = 0
        # Envelopes hold up to kafka.envelope_records records each: fewer per poll.
        tuning = consumer_tuning(k)
        tuning.update(max_poll_records=max(1, k.max_poll_records // 10),
                      max_partition_fetch_bytes=max(LABELLED_MAX_BYTES, k.max_partition_fetch_bytes))
        self.consumer = KafkaConsumer(
            group_id=f"{k.group_id}-eval", enable_auto_commit=False, auto_offset_reset="earliest",
            # kafka-python's defaults, named: eager assignors, which the stage's Membership needs
            # (every rebalance revokes everything and assigns anew).
            partition_assignment_strategy=[RangePartitionAssignor, RoundRobinPartitionAssignor],
            session_timeout_ms=10_000, heartbeat_interval_ms=1_000, max_poll_interval_ms=parse_duration(k.rebalance_timeout),
            **tuning, **client_kw)
        self.lag_meter = LagMeter(self.consumer, log)

    def _saved(self, size: int) -> None:
        """A checkpoint was acknowledged (by the saver's thread, or in the foreground after
        waiting for it: never both at once)."""
        self.checkpoints += 1
        self.checkpoint_bytes = size

    def on_partitions_revoked(self, revoked: Any) -> None:
        try:
            self._revoke(revoked)
        finally:
            self.membership.revoked()  # joining again from now (the save above is not the join)

    def _revoke(self, revoked: Any) -> None:
        with self.lock:
            parts = {tp.partition for tp in revoked} & set(self.parts)
            save = bool(parts) and can_checkpoint(self.lag_meter, "partitions revoked")
            # The saver takes no lock of ours: waiting for it here cannot deadlock, and the
            # checkpoint below then comes after (overwrites) the one it was sending.
            if save:
                self.saver.wait()
                self.pulse.beat()  # each wait of a revocation is bounded; together they may not be
                self._checkpoint(parts)
            for p in parts:
                del self.parts[p]

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.membership.assigned()  # restoring them has a pulse of its own
        with self.lock:
            self.rebalances += 1
            new = sorted({tp.partition for tp in assigned} - set(self.parts))
            saved = self.store.load_all("eval:", [f"eval:{p}" for p in new], self.pulse.beat) if new else {}
            for p in new:
                self.pulse.beat()  # an arm's learner tables take a while to unpickle
                st = PartitionState(self.cfg, self._keep_ms, self.probes, self.embeddings)
                ck = saved.get(f"eval:{p}")
                if ck is not None:
                    for key, blob in ck["arms"].items():
                        st.arms.load_arm(key, blob)
                    st.src_wm, st.dedupe, st.duplicates = ck["src_wm"], ck["dedupe"], ck["duplicates"]
                    st.src_idle, st.src_ckpt = ck["src_idle"], ck["src_ckpt"]
                    st.src_end = ck.get("src_end", {})  # absent from an older release's checkpoint
                    st.arms.ended, st.arms.experiments_ended = ck["ended"], ck["experiments_ended"]
                    if ck["offset"] is not None:
                        self.consumer.seek(TopicPartition(self.t.labelled, p), ck["offset"])
                    st.next_offset = ck["offset"]
                    log.info("eval partition %d resumed from checkpoint at offset %d (%d arms, %d labelled examples)",
                             p, ck["offset"], len(ck["arms"]), sum(a.evaluator.positives + a.evaluator.negatives
                                                                   for a in st.arms.arms.values()))
                self.parts[p] = st
            self.recovered.set()

    def _snapshot(self, parts: set[int]) -> tuple[list[tuple[str, Snapshot]], dict[TopicPartition, int]]:
        """The partitions' arms frozen (``ArmSet.freeze_arm``: what changes in place pickled
        now, the rest encoded later by whoever saves them) and their dedupe tables copied,
        with the ``labelled`` offset they reflect, and those offsets (to commit once the
        checkpoint is acknowledged).

        Runs under ``self.lock``, also from the rebalance listener (which the consumer's IO loop
        awaits), so it asks the consumer nothing: the offset is our own count of applied messages.
        """
        snaps, offsets = [], {}
        for p in sorted(parts):
            st = self.parts[p]
            arms = {key: st.arms.freeze_arm(key) for key in st.arms.keys()}
            state = {"offset": st.next_offset, "src_wm": dict(st.src_wm), "src_idle": dict(st.src_idle),
                     "src_ckpt": dict(st.src_ckpt), "src_end": dict(st.src_end), "dedupe": st.dedupe.frozen(),
                     "duplicates": st.duplicates, "ended": dict(st.arms.ended),
                     "experiments_ended": st.arms.experiments_ended}
            snaps.append((f"eval:{p}", functools.partial(_encode, state, arms)))
            if st.next_offset is not None:
                offsets[TopicPartition(self.t.labelled, p)] = st.next_offset
        return snaps, offsets

    def _checkpoint(self, parts: set[int]) -> dict[TopicPartition, int]:
        """Save the partitions' checkpoint now (rebalance, shutdown); returns the offsets for
        the caller to commit once it has released the lock. A failure is logged and counted:
        the next owner resumes from the previous checkpoint."""
        snaps, offsets = self._snapshot(parts)
        size = 0
        try:
            for key, raw in snaps:
                self.pulse.beat()
                size = max(size, self.store.save_snapshot(key, raw))
        except Exception:  # noqa: BLE001 - the stage must stop cleanly, or hand its partitions over
            self.foreground_failures += 1
            log.exception("checkpoint of evaluation partitions %s not saved: their next owner resumes from the "
                          "previous one and replays the labelled topic since", sorted(parts))
            return {}
        self._saved(size)
        return offsets

    @property
    def checkpoint_failures(self) -> int:
        return self.saver.failed + self.foreground_failures

    def watermark(self, st: PartitionState) -> int:
        """Min over the input partitions that are not idle; max when all are idle."""
        if self._inputs == 0 or len(st.src_wm) < self._inputs:
            return NEG_INF  # an input partition has not reported yet
        active = [st.src_wm[k] for k in range(self._inputs) if not st.src_idle.get(k, False)]
        return min(active) if active else max(st.src_wm[k] for k in range(self._inputs))

    def data_end(self, st: PartitionState) -> int | None:
        """The event time the input ended at, once every input partition's did (the end of a
        backfill: ``watermark.idle_ends``): the latest of their last events, the backfill's
        end, as a file's is its last event. Not the earliest: on a sparse stream a partition's
        last event can be minutes before the others' with nothing cut after it (its events
        simply stopped), and every example in those minutes would be counted as cut. Examples
        released then whose window reaches past the end are learnt from and kept out of the
        AUCs. ``None`` while any partition's input flows (or has not said)."""
        ends = [st.src_end.get(k) for k in range(self._inputs)]
        if not ends or any(e is None for e in ends):
            return None
        return max(e for e in ends if e is not None)

    def _process(self, batch: dict) -> None:
        for tp, msgs in batch.items():
            st = self.parts.get(tp.partition)
            if st is None:
                continue
            first = st.dedupe.first
            fresh: list = []  # applied together: one call for the poll, in offset order
            for m in msgs:
                env = decode_envelope(m.value)
                if env.origin != self._origin and env.origin != 0:
                    self._foreign(tp.partition)
                    continue
                if env.watermark > st.src_wm.get(env.src, NEG_INF):
                    st.src_wm[env.src] = env.watermark
                if env.checkpointed > st.src_ckpt.get(env.src, NEG_INF):
                    st.src_ckpt[env.src] = env.checkpointed
                st.src_idle[env.src] = env.idle and not env.records
                st.src_end[env.src] = env.ended
                for rec in env.records:
                    t = type(rec)
                    if t is Labelled:
                        imp, bit = rec.example.impression, LABELLED
                    else:
                        imp, bit = rec.impression, (SEEN if t is Seen else CLICKED)
                    if first(bit, imp.impression_id, imp.ts):
                        fresh.append(rec)
                    else:
                        st.duplicates += 1
            if fresh:
                st.arms.apply(fresh)
            st.next_offset = msgs[-1].offset + 1

    def _foreign(self, partition: int) -> None:
        """Another deployment (another consumer group) writes to this labelled topic: its
        records would be evaluated twice or under another config, and its watermarks would
        move this deployment's clock. Ignored, and said once."""
        if not self.foreign:
            log.error("topic %s carries envelopes of another deployment (another kafka.group_id; seen on partition "
                      "%d): ignored. Give each deployment its own kafka.topics.labelled (and checkpoints topic)",
                      self.t.labelled, partition)
        self.foreign += 1

    def _release(self, flush_partial: bool) -> int:
        released = 0
        now = time.monotonic()
        for st in self.parts.values():
            wm = self.watermark(st)
            if wm > NEG_INF:
                released += st.arms.release(wm, self.data_end(st))
            if self._inputs and len(st.src_ckpt) >= self._inputs:
                st.dedupe.prune(min(st.src_ckpt[k] for k in range(self._inputs)))
            if flush_partial:
                st.arms.flush_partial()
                st.deadline.clear()
            else:
                # an arm whose partial chunk waited max_batch_delay is evaluated now, even
                # while other arms keep releasing
                st.deadline.flush_overdue(st.arms, now)
        chunks = sum(st.arms.chunks for st in self.parts.values())
        if chunks != self._chunks:
            self._chunks = chunks
            self.last_evaluation_unix = time.time()
        return released

    @property
    def external(self) -> ExternalProbe | None:
        """The external probe, when it runs (the preferences topic's feed may update it)."""
        return next((p for p in self.probes if isinstance(p, ExternalProbe)), None)

    def run(self) -> None:
        # An arm evaluated before its tables are loaded would learn from missing leaked
        # features or representations, and give other figures than after a restart: wait.
        for ready in self.inputs_ready:
            while not ready.wait(0.2):
                self.pulse.beat()  # waiting for a feed, which has a pulse of its own
                if self.stopping.is_set():
                    self.consumer.close()
                    return
        self.membership.subscribed()
        self.consumer.subscribe([self.t.labelled], listener=listener_for(self, "eval"))
        self._inputs = len(self.consumer.partitions_for_topic(self.t.impressions) or ())
        last_ck = last_lag = last_released = time.monotonic()
        # The rebalance listener takes self.lock while the consumer's IO loop awaits it
        # (``rebalance``): the consumer calls that wait on that loop (metadata, commit, lag) are
        # made without it.
        # Envelopes applied per hold of the lock: a poll can bring a backlog of many
        # thousand records, and a scrape (which takes the lock) should not wait for all of it.
        step = max(1, SLICE_RECORDS // self.cfg.kafka.envelope_records)
        while not self.stopping.is_set():
            batch = self.consumer.poll(timeout_ms=200)
            if self.membership.since is not None and (not self.lag_meter.answering or coordinator_unknown(self.consumer)):
                self.membership.paused()  # no join goes on while the broker is away
            if not self._inputs:
                self._inputs = len(self.consumer.partitions_for_topic(self.t.impressions) or ())
            slices = [{tp: msgs[k:k + step]} for tp, msgs in batch.items() for k in range(0, len(msgs), step)]
            for sub in slices or [{}]:
                self.pulse.beat()  # at least once per round, after the poll
                with self.lock:
                    if sub:
                        self._process(sub)
                    now = time.monotonic()
                    # Partial chunks are evaluated only once releases have paused for
                    # max_batch_delay (or, per arm, once its partial chunk waited that long):
                    # while the stream flows, chunks are cut by count alone, as in the embedded
                    # runtime, so both give the same numbers.
                    if self._release(now - last_released >= self._delay_s):
                        last_released = now
            # Checkpoints between polls, when the whole poll is applied: frozen here, under the
            # lock; encoded, compressed and sent by the saver while the stage goes on. An interval whose
            # previous checkpoint is still being sent is skipped, not queued. Submitted under
            # the lock too, so a revocation (which takes it) always sees the save in flight and
            # waits for it before saving its own, newer state.
            with self.lock:
                now = time.monotonic()
                if now - last_ck >= self._ckpt_s and self.parts and not self.saver.busy():
                    self.saver.submit(*self._snapshot(set(self.parts)))
                    last_ck = now
                owned = set(self.parts)
            # Offsets of partitions revoked since are not ours to commit any more.
            commit_offsets(self.consumer, {tp: off for tp, off in self.saver.acknowledged().items()
                                           if tp.partition in owned}, log)
            if now - last_lag >= 1.0:
                if self.lag_meter.measure():
                    self.lag = self.lag_meter.lag
                last_lag = now
        save = not self.parts or can_checkpoint(self.lag_meter, "stopping", ask=True)
        if save:  # else a save on its way is abandoned: the broker would not take it either
            self.saver.wait()
        with self.lock:
            committed = self._checkpoint(set(self.parts)) if self.parts and save else {}
        commit_offsets(self.consumer, committed, log, wait_s=STOP_COMMIT_S)
        self.consumer.close()
