"""``stream-lis worker``: both stages, the metrics server and graceful shutdown in one process.

Scale out by starting more workers with the same ``kafka.group_id``: the join stage's input
partitions and the evaluation stage's arm partitions are spread over them by the consumer
groups, and move (with their checkpointed state) when a worker joins, leaves or dies.
"""

from __future__ import annotations

import logging
from collections import Counter
import signal
import threading
import time
from typing import Any, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ...config import Config
from ...engine import Counters, Snapshot
from ...evaluator import learner_names
from ...exporter import MetricsServer, SnapshotCollector
from ...watermark import NEG_INF
from ..process import tune_gc
from .checkpoints import CheckpointStore
from .eval_stage import EvalStage
from .join_stage import JoinStage
from .produce import make_producer
from .settings import client_kwargs, crc_accelerated, describe, producer_tuning
from .topics import create_topics

log = logging.getLogger("stream_lis.worker")


class Worker:
    def __init__(self, cfg: Config, port: int | None = 9464, host: str = "0.0.0.0", create: bool = True) -> None:
        self.cfg = cfg
        self.client_kw = client_kwargs(cfg.kafka)
        log.info("connecting: %s", describe(self.client_kw))
        if create:
            for name, what in create_topics(cfg, self.client_kw):
                log.info("topic %s: %s", name, what)
        tune_gc(cfg.runtime.gc_threshold)
        if not crc_accelerated():
            log.warning("the crc32c package is not installed: kafka-python computes record-batch CRC32Cs in pure "
                        "Python, which can take half of this worker's CPU (pip install crc32c)")
        self.producer = make_producer(self.client_kw, max_request_size=cfg.kafka.max_checkpoint_bytes,
                                      **producer_tuning(cfg.kafka))
        store = CheckpointStore(cfg.kafka.topics.checkpoints, self.producer, self.client_kw, cfg.kafka.max_checkpoint_bytes)
        self.join = JoinStage(cfg, self.client_kw, self.producer, store)
        self.eval = EvalStage(cfg, self.client_kw, store)
        self.started = time.time()
        self._duplicates = 0
        self._threads: list[threading.Thread] = []
        self.failed: BaseException | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(self.snapshot, self._extra))
        self.server = MetricsServer(self.registry, port, host, ready=self.ready) if port is not None else None

    def ready(self) -> bool:
        """Both stages have their partitions and recovered their state."""
        return self.join.recovered.is_set() and self.eval.recovered.is_set() and all(t.is_alive() for t in self._threads)

    def snapshot(self) -> Snapshot:
        with self.join.lock:
            lab = self.join.counters()
            # Partitions that never had input have no clock yet; they would hide the others'.
            wms = [l.watermark for l in self.join.labellers.values() if l.watermark.max_ts > NEG_INF]
            pending = sum(len(l.joiner) for l in self.join.labellers.values())
        with self.eval.lock:
            arms = [a for st in self.eval.parts.values() for a in st.arms.stats()]
            pipes = [a for st in self.eval.parts.values() for a in st.arms.arms.values()]
            held = sum(st.arms.held for st in self.eval.parts.values())
            ended = sum(st.arms.experiments_ended for st in self.eval.parts.values())
            shed_ended = sum((st.arms.shed_ended for st in self.eval.parts.values()), Counter())
            probes = [p.name for p in next(iter(self.eval.parts.values())).arms.probes] if self.eval.parts else []
            last_eval = self.eval.last_evaluation_unix
            self._duplicates = sum(st.duplicates for st in self.eval.parts.values())
        counters = Counters.of(lab, pipes, ended, shed_ended)
        return Snapshot(arms=sorted(arms, key=lambda a: (a.experiment, a.arm)), counters=counters,
                        watermark_ms=min((w.value for w in wms), default=NEG_INF),
                        max_event_ms=max((w.max_ts for w in wms), default=NEG_INF),
                        pending_impressions=pending, held_examples=held, probes=probes,
                        learner_names=learner_names(probes),
                        last_evaluation_unix=last_eval)

    def _extra(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily("stream_lis_consumer_lag", "Messages between the consumer's position and the end of each assigned partition.",
                                labels=["topic", "partition"])
        for (topic, p), n in sorted({**self.join.lag, **self.eval.lag}.items()):
            lag.add_metric([topic, str(p)], n)
        reb = CounterMetricFamily("stream_lis_rebalances", "Partition assignments received, by stage.", labels=["stage"])
        reb.add_metric(["join"], self.join.rebalances)
        reb.add_metric(["eval"], self.eval.rebalances)
        ck = CounterMetricFamily("stream_lis_checkpoints", "Checkpoints saved, by stage.", labels=["stage"])
        ck.add_metric(["join"], self.join.checkpoints)
        ck.add_metric(["eval"], self.eval.checkpoints)
        owned = GaugeMetricFamily("stream_lis_owned_partitions", "Partitions this worker owns, by stage.", labels=["stage"])
        owned.add_metric(["join"], len(self.join.labellers))
        owned.add_metric(["eval"], len(self.eval.parts))
        dup = CounterMetricFamily("stream_lis_duplicate_records", "Records the evaluation stage had already applied (replays after a restart), dropped.")
        dup.add_metric([], self._duplicates)  # read under the lock by snapshot(), just before
        ready = GaugeMetricFamily("stream_lis_ready", "1 once both stages have their partitions and recovered state.")
        ready.add_metric([], 1.0 if self.ready() else 0.0)
        size = GaugeMetricFamily("stream_lis_checkpoint_bytes", "Size of the last evaluation-stage checkpoint message.")
        size.add_metric([], self.eval.checkpoint_bytes)
        yield from (lag, reb, ck, owned, dup, ready, size)

    def _run(self, stage: Any) -> None:
        try:
            stage.run()
        except BaseException as exc:  # a dead stage must stop the worker, not hang it
            log.exception("%s stage failed", type(stage).__name__)
            self.failed = exc
            self.stop()

    def start(self) -> None:
        for stage in (self.join, self.eval):
            t = threading.Thread(target=self._run, args=(stage,), name=type(stage).__name__, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self.join.stopping.set()
        self.eval.stopping.set()

    def wait(self) -> None:
        for t in self._threads:
            while t.is_alive():
                t.join(0.5)
        self.producer.flush()
        self.producer.close()
        if self.server is not None:
            self.server.close()

    def run_forever(self) -> int:
        """Until SIGTERM/SIGINT: then a final checkpoint, leave the groups, exit."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())
        self.start()
        self.wait()
        return 1 if self.failed else 0
