"""``stream-lis worker``: the stages, the metrics server and graceful shutdown in one process.

Scale out by starting more workers with the same ``kafka.group_id``: the join stage's input
partitions and the evaluation stage's arm partitions are spread over them by the consumer
groups, and move (with their checkpointed state) when a worker joins, leaves or dies.

A worker runs both stages by default (``stages=("join", "eval")``), as two threads that share
one interpreter lock: one core at most. ``--stage join`` / ``--stage eval`` run one stage per
process, so each stage gets a core of its own and scales on its own (two Deployments; the
stages only meet on the labelled topic). A one-stage worker exports that stage's series: the
join stage the input counters, the evaluation stage the arms' figures.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections import Counter
from typing import Any, Iterator, Sequence

from kafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ...config import Config, ConfigError, parse_duration
from ...engine import Counters, Snapshot
from ...evaluator import learner_names
from ...exporter import MetricsServer, SnapshotCollector
from ...labeller import LabelCounters
from ...watermark import NEG_INF, POS_INF
from ..process import tune_gc
from . import fetch, rejoin
from .. import liveness
from .checkpoints import READ_RETRY_S, CheckpointStore
from .delivery import flush_limit_s
from .eval_stage import EvalStage
from .join_stage import JoinStage
from .tables import APPLIED, feeds_for
from .produce import dead_letter_sink, make_producer
from .settings import client_kwargs, crc_accelerated, describe, producer_tuning
from .startup import READY_HELP, BrokerWait
from .topics import LABELLED_MAX_BYTES, copartition_problem, create_topics

log = logging.getLogger("stream_lis.worker")


#: The stages a worker can run, in start order.
STAGES = ("join", "eval")

#: How long a scrape waits for a stage's state before it fails (Prometheus' default scrape
#: timeout is 10 s): a scrape that cannot be answered says so instead of hanging.
SCRAPE_WAIT_S = 5.0


class StageBusy(RuntimeError):
    """A stage held its state longer than a scrape waits (``/metrics`` answers 503)."""


@contextlib.contextmanager
def _held(lock: threading.Lock, stage: str) -> Iterator[None]:
    if not lock.acquire(timeout=SCRAPE_WAIT_S):
        raise StageBusy(f"the {stage} stage has held its state for over {SCRAPE_WAIT_S:g} s (a long restore, or "
                        "a client waiting on the broker); try again, and see the worker's log")
    try:
        yield
    finally:
        lock.release()


def _registry(collector: Any) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


class Worker:
    def __init__(self, cfg: Config, port: int | None = 9464, host: str = "0.0.0.0", create: bool = True,
                 stages: Sequence[str] = STAGES, server: MetricsServer | None = None) -> None:
        """``server``: one already up (the CLI binds the port first), answering for this
        worker from now on; otherwise one on ``port`` once the worker is made (None: none)."""
        unknown = set(stages) - set(STAGES)
        if unknown or not stages:
            raise ValueError(f"stages must be some of {STAGES}, got {list(stages)}")
        self.stages = tuple(s for s in STAGES if s in stages)
        self.cfg = cfg
        self.client_kw = client_kwargs(cfg.kafka)
        tuning = producer_tuning(cfg.kafka)  # refuses a codec that is not installed, before topics are made
        log.info("connecting: %s", describe(self.client_kw))
        starting = BrokerWait(self.client_kw, parse_duration(cfg.kafka.startup_timeout) / 1000)
        if server is not None:
            server.serve(_registry(starting), ready=lambda: False, healthy=starting.health, not_ready="starting")
        starting.wait()
        if create:
            for name, what in create_topics(cfg, self.client_kw):
                log.info("topic %s: %s", name, what)
        if "join" in self.stages:
            problem = copartition_problem(cfg, self.client_kw)
            if problem is not None:
                raise ConfigError(problem)
        tune_gc(cfg.runtime.gc_threshold)
        rejoin.install()  # a rebalance begun must end with an assignment (the module says why)
        if cfg.kafka.fast_fetch:
            fetch.install()
        else:
            fetch.uninstall()
        if not crc_accelerated():
            log.warning("the crc32c package is not installed: kafka-python computes record-batch CRC32Cs in pure "
                        "Python, which can take half of this worker's CPU (pip install crc32c)")
        self.producer = make_producer(self.client_kw, max_request_size=LABELLED_MAX_BYTES, **tuning)
        # Checkpoints have a producer of their own: the join stage flushes its envelopes before
        # each checkpoint, and must not wait for a large evaluation checkpoint on its way. Its
        # batches stay within the checkpoint topic's message limit, which applies to a batch.
        k = cfg.kafka
        self.checkpoint_producer = make_producer(
            self.client_kw, max_request_size=k.max_checkpoint_bytes,
            **{**tuning, "batch_size": min(k.producer_batch_bytes, k.max_checkpoint_bytes)})
        key = os.environ.get(cfg.kafka.checkpoint_key_env) or None
        if key is None:
            log.warning("checkpoints are not signed: whoever can write to topic %s can run code in this worker "
                        "(set $%s to a secret key shared by the workers)", cfg.kafka.topics.checkpoints,
                        cfg.kafka.checkpoint_key_env)
        # A restore runs in a rebalance listener, within the rebalance timeout: its retries take half of it at most.
        store = CheckpointStore(cfg.kafka.topics.checkpoints, self.checkpoint_producer, self.client_kw, cfg.kafka.max_checkpoint_bytes,
                                key.encode() if key else None, group=cfg.kafka.group_id,
                                read_retry_s=min(READ_RETRY_S, parse_duration(cfg.kafka.rebalance_timeout) / 2000))
        self._learn_output_topics()
        self.store = store
        self.join = JoinStage(cfg, self.client_kw, self.producer, store) if "join" in self.stages else None
        self.eval = EvalStage(cfg, self.client_kw, store) if "eval" in self.stages else None
        # Side topics' feeds run beside the evaluation stage, which waits for them.
        dead_letter = dead_letter_sink(self.producer, cfg.kafka.topics.dead_letters)
        self.feeds = feeds_for(self.eval, cfg, self.client_kw, dead_letter) if self.eval is not None else []
        self._running = [*self.feeds, *(st for st in (self.join, self.eval) if st is not None)]
        self.started = time.time()
        self._stall_s = parse_duration(cfg.kafka.stall_timeout) / 1000
        self._rebalance_s = parse_duration(cfg.kafka.rebalance_timeout) / 1000
        if (short := liveness.below_own_bounds(self._stall_s, flush_limit_s(self.producer))) is not None:
            log.warning("%s", short)
        #: The loops last said in the log to be stalled or unassigned, as ``(name, "stalled" |
        #: "unassigned")`` (said again only when that changes).
        self._stalled_said: tuple[tuple[str, str], ...] = ()
        self._duplicates: dict[int, int] = {}
        #: The evaluation stage's earliest partition clock at the last snapshot (None: none yet).
        self._eval_watermark: int | None = None
        #: (arm, partitions) already logged as held twice (``_one_copy_per_arm``)
        self._moved_arms: set[tuple[tuple[str, str], tuple[int, ...]]] = set()
        self._threads: list[threading.Thread] = []
        self.failed: BaseException | None = None
        self.registry = _registry(SnapshotCollector(self.snapshot, self._extra))
        if server is not None:
            server.serve(self.registry, ready=self.ready, healthy=self.health)
            self.server: MetricsServer | None = server
        else:
            self.server = MetricsServer(self.registry, port, host, ready=self.ready, healthy=self.health) if port is not None else None

    def ready(self) -> bool:
        """Every stage it runs has its partitions and recovered its state."""
        return all(st.recovered.is_set() for st in self._running) and all(t.is_alive() for t in self._threads)

    def loops(self) -> list[tuple[str, str, Any]]:
        """``(label, name, stage)`` of every loop the worker runs, its stages and side-table
        feeds: the metrics' ``loop`` label (``join``, ``eval``, a table's name) and the name
        the log and ``/healthz`` give it."""
        out = [(feed.name, f"{feed.name} table", feed) for feed in self.feeds]
        return out + [(label, f"{label} stage", st) for label, st in (("join", self.join), ("eval", self.eval))
                      if st is not None]

    def _learn_output_topics(self) -> None:
        """Have the producers fetch the metadata of every topic they write to, now. A producer
        looks a topic up on its first send to it, and waits for the broker to answer (up to
        its max_block_ms, 60 s): the join stage's first dead letter, sent under the stage's
        lock, came during a broker outage once, and held the stage (and every scrape of
        /metrics) until the broker was back."""
        t = self.cfg.kafka.topics
        for producer, topics in ((self.producer, (t.labelled, t.dead_letters)), (self.checkpoint_producer, (t.checkpoints,))):
            for topic in topics:
                try:
                    producer.partitions_for(topic)
                except Exception as exc:  # noqa: BLE001 - the first send looks it up again
                    log.warning("topic %s: no metadata yet (%s); the first send to it waits for the broker", topic, exc)

    def health(self) -> tuple[bool, str]:
        """``/healthz``: False (and why) once a running loop has not gone round for
        ``kafka.stall_timeout``, or a stage has been without an assignment for longer than a
        group join may take (``kafka.rebalance_timeout``) plus that timeout: its loop goes
        round, owning nothing. Reads the loops' pulses and the stages' memberships only, never
        a stage's lock (a wedged stage may hold it). A stopping loop is left out: its final
        checkpoint has bounds of its own, and its consumer leaves the group."""
        running = [(name, st) for _, name, st in self.loops() if not st.stopping.is_set()]
        stuck = liveness.stalled([(name, st.pulse) for name, st in running], self._stall_s)
        idle = liveness.unassigned([(name, st.membership) for name, st in running
                                    if hasattr(st, "membership")],  # the side tables' feeds join no group
                                   self._rebalance_s, self._stall_s)
        said = [liveness.describe(stuck, self._stall_s)] if stuck else []
        if idle:
            said.append(liveness.describe_unassigned(idle, self._rebalance_s, self._stall_s))
        found = tuple((name, "stalled") for name, _ in stuck) + tuple((name, "unassigned") for name, _ in idle)
        if found != self._stalled_said:
            if said:
                log.error("%s", "; ".join(said))
            else:
                gone = [f"the {name} loop not stalled any more" if why == "stalled" else f"the {name} with an assignment"
                        for name, why in self._stalled_said]
                log.warning("%s (going round again, assigned again, or stopping): /healthz answers ok", " and ".join(gone))
            self._stalled_said = found
        return not said, "; ".join(said) or "ok"

    def snapshot(self) -> Snapshot:
        lab, wms, pending = LabelCounters(), [], 0
        by_part: dict[str, dict[int, Counters]] = {}
        if self.join is not None:
            with _held(self.join.lock, "join"):
                lab = self.join.counters()
                by_part["join"] = {p: Counters.of(l.counters, (), 0) for p, l in self.join.labellers.items()}
                # Partitions that never had input have no clock yet; they would hide the others'.
                wms = [l.watermark for l in self.join.labellers.values() if l.watermark.max_ts > NEG_INF]
                pending = sum(len(l.joiner) for l in self.join.labellers.values())
        arms, pipes, held, ended, shed_ended, probes, last_eval = [], [], 0, 0, Counter(), [], None
        if self.eval is not None:
            arms, pipes, held, ended, shed_ended, probes, last_eval, by_part["eval"] = self._eval_view(self.eval)
        counters = Counters.of(lab, pipes, ended, shed_ended)
        return Snapshot(arms=sorted(arms, key=lambda a: (a.experiment, a.arm)), counters=counters,
                        watermark_ms=min((w.value for w in wms), default=NEG_INF),
                        max_event_ms=max((w.max_ts for w in wms), default=NEG_INF),
                        pending_impressions=pending, held_examples=held, probes=probes,
                        learner_names=learner_names(probes),
                        last_evaluation_unix=last_eval, partition_counters=by_part)

    def _eval_view(self, ev: EvalStage) -> tuple:
        with _held(ev.lock, "evaluation"):
            parts = ev.parts.values()
            arms = self._one_copy_per_arm(ev)
            pipes = [a for st in parts for a in st.arms.arms.values()]
            held = sum(st.arms.held for st in parts)
            ended = sum(st.arms.experiments_ended for st in parts)
            shed_ended = sum((st.arms.shed_ended for st in parts), Counter())
            probes = [p.name for p in next(iter(parts)).arms.probes] if ev.parts else []
            self._duplicates = {p: st.duplicates for p, st in ev.parts.items()}
            clocks = [wm for wm in map(ev.watermark, parts) if NEG_INF < wm < POS_INF]
            self._eval_watermark = min(clocks, default=None)
            by_part = {p: Counters.of(LabelCounters(), st.arms.arms.values(), st.arms.experiments_ended, st.arms.shed_ended)
                       for p, st in ev.parts.items()}
            return arms, pipes, held, ended, shed_ended, probes, ev.last_evaluation_unix, by_part

    def _one_copy_per_arm(self, ev: EvalStage) -> list:
        """Each arm's figures, once. An arm lives on the ``labelled`` partition its key maps to;
        declaring experiments, or adding an arm or experiment, can map it to another one, where
        it starts over while the old copy waits for ``time.experiment_idle_timeout``. Both
        exported would be two series with the same labels: the most recently active copy is
        shown, and the move is logged once (when /metrics is scraped: this is the scrape's view)."""
        copies: dict[tuple[str, str], list[tuple[int, int, Any]]] = {}
        for p, st in ev.parts.items():
            for key, a in st.arms.arms.items():
                copies.setdefault(key, []).append((a.last_seen, p, a))
        out = []
        for key, found in copies.items():
            found.sort(key=lambda c: c[:2])
            if len(found) > 1:
                parts = tuple(p for _, p, _ in found)
                if (key, parts) not in self._moved_arms:
                    self._moved_arms.add((key, parts))
                    log.warning("arm %s/%s is held by labelled partitions %s: its partition changed (the declared "
                                "experiments changed), so it started over on partition %d; /metrics shows that copy, "
                                "and the others end after time.experiment_idle_timeout", key[0], key[1],
                                ", ".join(map(str, parts)), found[-1][1])
            out.append(found[-1][2].stats())
        return out

    def _extra(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily("stream_lis_consumer_lag", "Messages between the consumer's position and the end of "
                                "each assigned partition, by the loop reading it (join, eval: envelopes of up to "
                                "kafka.envelope_records records each; a side table's name).", labels=["topic", "partition", "loop"])
        lags: dict[tuple[str, int], tuple[int, str]] = {}
        for label, _, st in self.loops():
            lags.update({tp: (n, label) for tp, n in st.lag.items()})
        for (topic, p), (n, label) in sorted(lags.items()):
            lag.add_metric([topic, str(p), label], n)
        refused = CounterMetricFamily("stream_lis_checkpoints_refused", "Checkpoints refused on loading: their "
                                      "signature is missing or wrong (kafka.checkpoint_key_env), parts are missing, or "
                                      "they cannot be read; their partitions started over.")
        refused.add_metric([], self.store.refused)
        yield refused
        reb = CounterMetricFamily("stream_lis_rebalances", "Partition assignments received, by stage.", labels=["stage"])
        ck = CounterMetricFamily("stream_lis_checkpoints", "Checkpoints saved, by stage.", labels=["stage"])
        failed = CounterMetricFamily("stream_lis_checkpoint_failures", "Checkpoints the broker refused or did not "
                                     "acknowledge (their offsets stay uncommitted; the next interval tries again), "
                                     "by stage.", labels=["stage"])
        owned = GaugeMetricFamily("stream_lis_owned_partitions", "Partitions this worker owns, by stage.", labels=["stage"])
        if self.join is not None:
            reb.add_metric(["join"], self.join.rebalances)
            ck.add_metric(["join"], self.join.checkpoints)
            failed.add_metric(["join"], self.join.checkpoint_failures)
            owned.add_metric(["join"], len(self.join.labellers))
            keys = CounterMetricFamily("stream_lis_input_key_mismatch", "Input records whose Kafka key is not their "
                                       "impression id, by topic and kind (unkeyed, other_key), read by this worker "
                                       "since it started. Where impressions and clicks are keyed differently, a click "
                                       "and its impression can be read on different partitions and never join.",
                                       labels=["topic", "kind"])
            with _held(self.join.lock, "join"):
                mismatched = sorted(self.join.key_mismatch.items())
            for (topic, kind), n in mismatched:
                keys.add_metric([topic, kind], n)
            yield keys
            copart = GaugeMetricFamily("stream_lis_input_copartitioned", "1 while the input topics have as many "
                                       "partitions as each other, as this worker's join stage last saw them; 0 once a "
                                       "partition was added to one of them: clicks then miss their impressions.")
            copart.add_metric([], 1.0 if self.join.copartition_problem is None else 0.0)
            yield copart
        answering = GaugeMetricFamily("stream_lis_broker_answering", "1 while the broker answers this worker's "
                                      "requests (its stages' lag measurements); 0 from one that timed out until one "
                                      "succeeds: the worker waits for it and goes on, and its consumer lag is stale.")
        answering.add_metric([], 1.0 if all(st.lag_meter.answering for st in self._running) else 0.0)
        yield answering
        ready = GaugeMetricFamily("stream_lis_ready", READY_HELP)
        ready.add_metric([], 1.0 if self.ready() else 0.0)
        yield from (lag, ready)
        if self.eval is not None:
            reb.add_metric(["eval"], self.eval.rebalances)
            ck.add_metric(["eval"], self.eval.checkpoints)
            failed.add_metric(["eval"], self.eval.checkpoint_failures)
            owned.add_metric(["eval"], len(self.eval.parts))
            dup = CounterMetricFamily("stream_lis_duplicate_records", "Records the evaluation stage had already applied (replays after a restart), dropped.",
                                      labels=["partition"])
            for p, n in sorted(self._duplicates.items()):  # read under the lock by snapshot(), just before
                dup.add_metric([str(p)], n)
            size = GaugeMetricFamily("stream_lis_checkpoint_bytes", "Size of the largest partition checkpoint of the "
                                     "evaluation stage's last save (compressed; over kafka.max_checkpoint_bytes it is "
                                     "written in parts).")
            size.add_metric([], self.eval.checkpoint_bytes)
            yield from (dup, size)
            wm = self._eval_watermark  # read under the lock by snapshot(), just before
            if wm is not None:
                # The join stage's clock (stream_lis_watermark_lag_seconds) says how far the input
                # is read; this one how far it is evaluated: the labelled topic between them can
                # hold a backlog the other cannot show.
                behind = GaugeMetricFamily("stream_lis_evaluation_lag_seconds", "Wall clock minus the evaluation "
                                           "stage's event clock (the earliest of its labelled partitions' watermarks): "
                                           "how far behind real time the evaluated examples are.")
                behind.add_metric([], time.time() - wm / 1000.0)
                yield behind
        if self.feeds:
            recs = CounterMetricFamily("stream_lis_table_records", "Records read from a side topic into its table "
                                       "(preferences: the external probe's dataset; embeddings: the arms' "
                                       "representations), by outcome: upserted, deleted, absent (a tombstone for a "
                                       "key the table does not hold), or why it was rejected (dead-lettered).",
                                       labels=["table", "outcome"])
            entries = GaugeMetricFamily("stream_lis_table_entries", "Entries a side table holds (items; vectors).",
                                        labels=["table"])
            bad = GaugeMetricFamily("stream_lis_table_rejected_keys", "Keys of a side topic whose latest record the "
                                    "table rejected: data the table lacks until the publisher sends a good record "
                                    "(or a tombstone) for each. Unlike the rejected records' counts, not raised "
                                    "again by the restart that reads the topic again.", labels=["table"])
            for feed in self.feeds:
                counts = dict(feed.counts)
                # Every outcome from 0, rejection reasons too: a series born at its first
                # count already holds it, and increase() / rate() miss that first burst.
                for outcome in sorted(set(APPLIED) | set(feed.details) | set(counts)):
                    recs.add_metric([feed.name, outcome], counts.get(outcome, 0))
                entries.add_metric([feed.name], feed.size())
                bad.add_metric([feed.name], len(feed.rejected_keys))  # len(): one atomic read, no lock
            yield from (recs, entries, bad)
        yield from (reb, ck, failed, owned, self._unassigned(), self._loop_progress(), self._stall_timeout(),
                    self._rebalance_timeout())

    def _unassigned(self) -> GaugeMetricFamily:
        """How long each stage has been in a group join, from the memberships alone (no lock)."""
        g = GaugeMetricFamily("stream_lis_unassigned_seconds", "Seconds this worker's stage has been in a group join "
                              "without an assignment, since it subscribed or gave its partitions up for a rebalance "
                              "(time while the broker does not answer left out); 0 while it holds one (an empty one "
                              "too). Past kafka.rebalance_timeout plus kafka.stall_timeout /healthz fails.",
                              labels=["stage"])
        for label, st in (("join", self.join), ("eval", self.eval)):
            if st is not None:
                g.add_metric([label], st.membership.unassigned_for())
        return g

    def _loop_progress(self) -> GaugeMetricFamily:
        """When each loop last went round, from the pulses alone (no stage's lock)."""
        beat = GaugeMetricFamily("stream_lis_loop_progress_timestamp_seconds", "When each of the worker's loops "
                                 "(join and eval stages, side-table feeds) last went round or made progress restoring "
                                 "or saving state (Unix time). time() minus this past kafka.stall_timeout fails /healthz.",
                                 labels=["loop"])
        now = time.time()
        for label, _, st in self.loops():
            beat.add_metric([label], now - st.pulse.age())
        return beat

    def _stall_timeout(self) -> GaugeMetricFamily:
        """The configured stall timeout, so the alert on a stalled loop (``WorkerLoopStalled``)
        waits for it to have restarted the worker rather than for a figure kept in step by hand."""
        g = GaugeMetricFamily("stream_lis_stall_timeout_seconds", "kafka.stall_timeout: how long a loop may go "
                              "without going round before /healthz fails (0: the check is off).")
        g.add_metric([], self._stall_s)
        return g

    def _rebalance_timeout(self) -> GaugeMetricFamily:
        """The configured rebalance timeout, for ``StageWithoutPartitions`` (as ``_stall_timeout``)."""
        g = GaugeMetricFamily("stream_lis_rebalance_timeout_seconds", "kafka.rebalance_timeout: the longest the "
                              "broker holds a group join open; a stage without an assignment this long (see "
                              "stream_lis_unassigned_seconds) is past any rebalance.")
        g.add_metric([], self._rebalance_s)
        return g

    def _run(self, stage: Any) -> None:
        try:
            stage.run()
        except BaseException as exc:  # a dead stage must stop the worker, not hang it
            log.exception("%s stage failed", type(stage).__name__)
            self.failed = exc
            self.stop()

    def start(self) -> None:
        for stage in self._running:  # their clients connected one after another before this
            stage.pulse.beat()
        for stage in self._running:
            t = threading.Thread(target=self._run, args=(stage,), name=type(stage).__name__, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        if not any(st.stopping.is_set() for st in self._running):
            log.info("stopping: each stage saves a final checkpoint, then leaves its consumer group")
        for st in self._running:
            st.stopping.set()

    def wait(self) -> None:
        for t in self._threads:
            while t.is_alive():
                t.join(0.5)
        # Bounded: a client stuck after a broker stall must not keep a stopping worker up, and
        # while the broker does not answer there is no checkpoint these sends would back.
        answering = all(st.lag_meter.answering for st in self._running)
        unsent = False
        for producer in (self.producer, self.checkpoint_producer):
            try:
                producer.flush(timeout=flush_limit_s(producer) if answering else 5)
                producer.close(timeout=10)
            except KafkaTimeoutError:
                unsent = True
                try:  # nothing more to wait for; its close raises again while records are pending
                    producer.close(timeout=0)
                except KafkaTimeoutError:
                    # and stays open, so that its __del__ raises once more at exit (a traceback
                    # in the log of a clean stop): kafka-python's own mark of a closed producer.
                    producer._closed = True
        if unsent:
            log.warning("the producer did not finish sending before the worker stopped: a restart resumes from the "
                        "last checkpoint and sends it again")
        if self.server is not None:
            self.server.close()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        """The first signal stops the worker cleanly (final checkpoints); a second one, sent
        while that waits on a broker, ends the process now: the restart resumes from the
        last checkpoint."""
        if any(st.stopping.is_set() for st in self._running):
            log.warning("%s again: exiting now, without final checkpoints", signal.Signals(signum).name)
            logging.shutdown()
            os._exit(128 + signum)
        self.stop()

    def run_forever(self) -> int:
        """Until SIGTERM/SIGINT: then a final checkpoint, leave the groups, exit."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self.start()
        self.wait()
        log.info("stopped%s", " after a stage failed (see above)" if self.failed else "")
        return 1 if self.failed else 0
