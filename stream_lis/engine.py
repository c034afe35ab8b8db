"""The transport-free core: events in, learner updates and figures out.

``Engine`` is the two stages of the core wired back to back in one process: a ``Labeller``
(event clock and impression-click join) feeding an ``ArmSet`` (each arm's behaviour log,
look-ahead buffer, probes and learners). It does no I/O: runtimes feed it records and read
its ``snapshot()``; rejected records go to the ``on_invalid`` callback they provide (a
dead-letter file or topic). The Kafka runtime runs the same two stages on different workers.

>>> from stream_lis.config import Config
>>> eng = Engine(Config())
>>> eng.process_records([b'{"type":"click"', b'{"type":"click","impression_id":"x","ts":5}'])
>>> eng.flush()
>>> dict(eng.counters.invalid), dict(eng.counters.clicks)
({'unparseable': 1}, {'orphan': 1})
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from .arms import ArmKey, ArmPipeline, ArmSet
from .config import Config, parse_duration
from .embedding_table import EmbeddingTable, build_embeddings
from .evaluator import ArmEvaluator, ArmStats, learner_names
from .events import Click, Impression, Invalid, decode_events
from .labeller import LABEL_DELAY_BUCKETS, InvalidSink, LabelCounters, Labeller
from .probes import Probe
from .watermark import POS_INF

if TYPE_CHECKING:
    from .freshness import ChunkDeadline

__all__ = ["Engine", "Snapshot", "Counters", "LABEL_DELAY_BUCKETS", "decoder_for"]


@dataclass
class Counters:
    """Monotone counts since start; exported as ``*_total`` series."""

    invalid: Counter[str] = field(default_factory=Counter)
    clicks: Counter[str] = field(default_factory=Counter)
    impressions: Counter[ArmKey] = field(default_factory=Counter)
    attributed: Counter[ArmKey] = field(default_factory=Counter)
    label_delay: list[int] = field(default_factory=lambda: [0] * len(LABEL_DELAY_BUCKETS))
    label_delay_sum: float = 0.0
    #: Positives only (``LabelCounters.click_delay``).
    click_delay: list[int] = field(default_factory=lambda: [0] * len(LABEL_DELAY_BUCKETS))
    click_delay_sum: float = 0.0
    records: int = 0
    experiments_ended: int = 0
    #: Items dropped by a memory bound (``limits.*``), by bound.
    shed: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, lab: LabelCounters, pipes: Iterable[ArmPipeline], experiments_ended: int,
           shed: Counter[str] | None = None) -> "Counters":
        """The join stage's counts and the arms' own (one place or several: a worker's partitions).

        ``shed``: what arms no longer in ``pipes`` (ended experiments) had shed.
        """
        pipes = list(pipes)
        total_shed = Counter(shed or ())
        for a in pipes:
            total_shed.update(a.shed)
        return cls(
            invalid=Counter(lab.invalid), clicks=Counter(lab.clicks),
            impressions=Counter({a.key: a.impressions for a in pipes}),
            attributed=Counter({a.key: a.clicks for a in pipes}),
            label_delay=list(lab.label_delay), label_delay_sum=lab.label_delay_sum,
            click_delay=list(lab.click_delay), click_delay_sum=lab.click_delay_sum,
            records=lab.records, experiments_ended=experiments_ended, shed=total_shed,
        )


@dataclass
class Snapshot:
    """Everything the exporter, the live table and the summary report, at one instant."""

    arms: list[ArmStats]
    counters: Counters
    watermark_ms: int
    max_event_ms: int
    pending_impressions: int
    held_examples: int
    probes: list[str]
    learner_names: list[str]
    last_evaluation_unix: float | None = None
    #: Kafka workers: the counters held by each partition's state, by stage ("join": input
    #: partitions, "eval": ``labelled`` partitions). They are checkpointed with the partition
    #: and move with it on a rebalance, so they are exported per partition: a worker's total
    #: would drop on one worker and jump on the other, which Prometheus reads as a counter
    #: reset and a burst. ``None``: one place holds everything (the embedded runtime).
    partition_counters: dict[str, dict[int, Counters]] | None = None


def decoder_for(cfg: Config) -> Callable[[Sequence[bytes | str]], list[Impression | Click | Invalid]]:
    """``decode_events`` (a batch of records) with the config's limits and declared arms bound."""
    lim, declared = cfg.limits, cfg.declared_arms()

    def decode(raws: Sequence[bytes | str]) -> list[Impression | Click | Invalid]:
        return decode_events(raws, max_bytes=lim.max_event_bytes, max_embedding_dims=lim.max_embedding_dims,
                             max_string_length=lim.max_string_length, declared_arms=declared)

    return decode


class Engine:
    """Labeller + ArmSet in one process; not thread-safe (runtimes serialise calls)."""

    def __init__(self, cfg: Config, on_invalid: InvalidSink | None = None, probes: Sequence[Probe] | None = None,
                 clock: Callable[[], float] = time.time, embeddings: EmbeddingTable | None = None) -> None:
        """``probes`` / ``embeddings``: given instead of the ones the config describes."""
        self.cfg = cfg
        t = cfg.time
        self.labeller = Labeller(t.attribution_window_ms, t.allowed_lateness_ms, cfg.limits.max_pending_impressions, on_invalid,
                                 parse_duration(cfg.limits.max_future_skew), max_arms=cfg.limits.max_arms,
                                 arm_idle_ms=t.experiment_idle_timeout_ms)
        fixed = list(probes) if probes is not None else None
        table = embeddings if embeddings is not None else build_embeddings(cfg)
        self.armset = ArmSet(cfg, (lambda: fixed) if fixed is not None else None, table)
        self.clock = clock
        self.last_evaluation_unix: float | None = None
        self._chunks = 0
        self._decode = decoder_for(cfg)

    # -- views kept for callers of the single-process core -------------------------------
    @property
    def watermark(self):
        return self.labeller.watermark

    @property
    def joiner(self):
        return self.labeller.joiner

    @property
    def probes(self) -> Sequence[Probe]:
        return self.armset.probes

    @property
    def pipelines(self) -> dict[ArmKey, ArmPipeline]:
        return self.armset.arms

    @property
    def arms(self) -> dict[ArmKey, ArmEvaluator]:
        return {k: a.evaluator for k, a in self.armset.arms.items()}

    @property
    def ended(self) -> dict[ArmKey, ArmStats]:
        return self.armset.ended

    @property
    def counters(self) -> Counters:
        return Counters.of(self.labeller.counters, self.armset.arms.values(), self.armset.experiments_ended,
                           self.armset.shed_ended)

    # -- input -------------------------------------------------------------------------
    def process_records(self, records: Iterable[bytes | str], source: str = "input",
                        where: Callable[[int], str] | None = None) -> None:
        """Decode, validate and process raw records (one JSON object each).

        ``where(k)``: the source a dead letter names for the ``k``-th of these records (a
        file's ``name:line``); by default ``source``.
        """
        records = records if isinstance(records, list) else list(records)
        events: list[Impression | Click] = []
        raws: list[bytes | str] = []
        rejected: list[int] = []
        for raw, ev in zip(records, self._decode(records)):
            if type(ev) is Invalid:
                k = len(events) + len(rejected)
                self.labeller.reject(ev, where(k) if where is not None else source)
                rejected.append(k)
            else:
                events.append(ev)
                raws.append(raw)
        self.process(events, source, raws, _EventSources(where, rejected, len(events)) if where is not None else None)

    def process(self, events: Sequence[Impression | Click], source: str = "input",
                raws: Sequence[bytes | str] | None = None, sources: Sequence[str] | None = None) -> None:
        """Process validated events in arrival order, then evaluate what became ready.

        ``raws``, parallel to ``events``, are the original records: an event rejected here
        (late, duplicate, shed) is dead-lettered with its original bytes, and with
        ``sources[k]`` (parallel too) as its source when given.
        """
        self.armset.apply(self.labeller.process(events, source, raws, sources))
        self._release()

    def _release(self, end_ms: int | None = None) -> None:
        self.armset.release(self.labeller.watermark.value, end_ms)
        chunks = self.armset.chunks
        if chunks != self._chunks:
            self._chunks = chunks
            self.last_evaluation_unix = self.clock()

    def flush(self, mark_incomplete: bool = True, input_ended: bool = True) -> None:
        """End of a finite input: close every window and evaluate everything held.

        With ``mark_incomplete`` (the default) examples whose look-ahead window reaches past the
        last event are left out of the AUCs; without it they count, as they do in a live stream
        whose idle partitions close windows by the wall clock. ``input_ended=False``: the run
        stopped before its input ended (a duration, a record count, a signal), so on-time
        events up to the largest event time may still have been to come: every example still
        held is left out of the AUCs (those the watermark released are complete).
        """
        end = None
        if mark_incomplete:
            end = self.labeller.watermark.max_ts if input_ended else self.labeller.watermark.value
        self.armset.apply(self.labeller.advance_to(POS_INF))
        self._release(end_ms=end)
        self.flush_partial()

    def flush_partial(self) -> None:
        """Evaluate partial chunks now (a live runtime's freshness deadline)."""
        self.armset.flush_partial()
        self._release()

    def flush_overdue(self, deadline: "ChunkDeadline", now: float) -> None:
        """Evaluate the partial chunks that waited past the freshness deadline (live input)."""
        if deadline.flush_overdue(self.armset, now):
            self._release()

    def end_experiment(self, experiment: str) -> list[ArmStats]:
        return self.armset.end_experiment(experiment)

    # -- output ------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        names = [p.name for p in self.probes]
        return Snapshot(
            arms=self.armset.stats(),
            counters=self.counters,
            watermark_ms=self.labeller.watermark.value,
            max_event_ms=self.labeller.watermark.max_ts,
            pending_impressions=len(self.labeller.joiner),
            held_examples=self.armset.held,
            probes=names,
            learner_names=learner_names(names),
            last_evaluation_unix=self.last_evaluation_unix,
        )


class _EventSources(Sequence[str]):
    """The dead-letter sources of a batch's valid events, computed only for one rejected
    later (late, duplicate): event ``e`` is record ``e`` plus the invalid records before it."""

    def __init__(self, where: Callable[[int], str], rejected: list[int], n: int) -> None:
        self.where, self.rejected, self.n = where, rejected, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, e: int) -> str:  # type: ignore[override]
        k = e
        for r in self.rejected:  # ascending record numbers
            if r <= k:
                k += 1
        return self.where(k)
