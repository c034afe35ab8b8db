"""The transport-free core: events in, learner updates and figures out.

``Engine`` owns the event clock, the impression-click join, the look-ahead buffer, the
behaviour log the probes read, and one ``ArmEvaluator`` per (experiment, arm). It does no
I/O: runtimes (embedded file/simulator, Kafka/faust) feed it records and read its
``snapshot()``; rejected records go to the ``on_invalid`` callback they provide (a
dead-letter file or topic).

>>> from stream_lis.config import Config
>>> eng = Engine(Config())
>>> eng.process_records([b'{"type":"click"', b'{"type":"click","impression_id":"x","ts":5}'])
>>> eng.flush()
>>> dict(eng.counters.invalid), dict(eng.counters.clicks)
({'unparseable': 1}, {'orphan': 1})
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from .config import Config
from .evaluator import ArmEvaluator, ArmStats
from .events import Click, Impression, Invalid, decode_event, encode_event
from .horizon import LookAheadBuffer
from .join import ClickJoiner, LabelledExample
from .probes import BehaviourLog, Probe, build_probes
from .watermark import POS_INF, Watermark

#: Upper bounds (seconds) of the label-delay histogram: event time from impression to label.
LABEL_DELAY_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, math.inf)

InvalidSink = Callable[[Invalid, str], None]
ArmKey = tuple[str, str]


@dataclass
class Counters:
    """Monotone counts since start; exported as ``*_total`` series."""

    invalid: Counter[str] = field(default_factory=Counter)
    clicks: Counter[str] = field(default_factory=Counter)
    impressions: Counter[ArmKey] = field(default_factory=Counter)
    attributed: Counter[ArmKey] = field(default_factory=Counter)
    label_delay: list[int] = field(default_factory=lambda: [0] * len(LABEL_DELAY_BUCKETS))
    label_delay_sum: float = 0.0
    records: int = 0
    experiments_ended: int = 0


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


class Engine:
    """The core pipeline; not thread-safe (runtimes serialise calls, e.g. with a lock)."""

    def __init__(self, cfg: Config, on_invalid: InvalidSink | None = None, probes: Sequence[Probe] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.last_evaluation_unix: float | None = None
        self._evaluated_chunks = 0
        t = cfg.time
        self.window_ms, self.horizon_ms = t.attribution_window_ms, t.horizon_ms
        self.watermark = Watermark(t.allowed_lateness_ms)
        self.joiner = ClickJoiner(self.window_ms)
        self.horizon = LookAheadBuffer(max(self.window_ms, self.horizon_ms))
        self.log = BehaviourLog()
        self.probes = list(probes) if probes is not None else build_probes(cfg.probes)
        self.arms: dict[ArmKey, ArmEvaluator] = {}
        self.ended: dict[ArmKey, ArmStats] = {}
        self.counters = Counters()
        self.on_invalid = on_invalid
        self._declared = cfg.declared_arms()
        self._last_seen: dict[str, int] = {}
        self._since_prune = 0
        lim = cfg.limits
        self._decode_kw = dict(
            max_bytes=lim.max_event_bytes,
            max_embedding_dims=lim.max_embedding_dims,
            max_string_length=lim.max_string_length,
            declared_arms=self._declared,
        )

    # -- input -------------------------------------------------------------------------
    def process_records(self, records: Iterable[bytes | str], source: str = "input") -> None:
        """Decode, validate and process raw records (one JSON object each)."""
        events: list[Impression | Click] = []
        raws: list[bytes | str] = []
        for raw in records:
            ev = decode_event(raw, **self._decode_kw)
            if isinstance(ev, Invalid):
                self._reject(ev, source)
            else:
                events.append(ev)
                raws.append(raw)
        self.process(events, source, raws)

    def process(self, events: Sequence[Impression | Click], source: str = "input",
                raws: Sequence[bytes | str] | None = None) -> None:
        """Process validated events in arrival order, then evaluate what became ready.

        ``raws``, parallel to ``events``, are the original records: an event rejected here
        (late, duplicate, shed) is dead-lettered with its original bytes.
        """
        wm = self.watermark
        joiner = self.joiner
        c = self.counters
        max_pending = self.cfg.limits.max_pending_impressions
        for k, ev in enumerate(events):
            c.records += 1
            if isinstance(ev, Impression):
                reject = None
                if wm.is_late(ev.ts):
                    reject = ("late_event", f"ts {ev.ts} < watermark {wm.value}")
                elif joiner.knows(ev.impression_id):
                    reject = ("duplicate_impression", ev.impression_id)
                elif len(joiner) >= max_pending:
                    reject = ("shed_overload", f"{len(joiner)} pending impressions >= limits.max_pending_impressions")
                if reject is not None:
                    raw = raws[k] if raws is not None else encode_event(ev)
                    self._reject(Invalid(*reject, raw.encode() if isinstance(raw, str) else raw), source)
                    continue
                wm.observe(ev.ts)
                key = (ev.experiment, ev.arm)
                c.impressions[key] += 1
                self._last_seen[ev.experiment] = ev.ts
                self.log.add_impression(ev.item_id, ev.ts)
                for outcome in joiner.add_impression(ev):
                    self._count_click(outcome, ev)
            else:
                wm.observe(ev.ts)
                outcome = joiner.add_click(ev)
                if outcome != "held":
                    p = joiner.pending.get(ev.impression_id)
                    self._count_click(outcome, p.impression if p is not None else None)
            self._expire()
        self._release()

    def _count_click(self, outcome: str, imp: Impression | None) -> None:
        self.counters.clicks[outcome] += 1
        if outcome == "attributed" and imp is not None:
            self.counters.attributed[(imp.experiment, imp.arm)] += 1
            p = self.joiner.pending[imp.impression_id]
            self.log.add_click(imp.user_id, imp.item_id, p.click_ts, imp.impression_id)

    def _reject(self, inv: Invalid, source: str) -> None:
        self.counters.invalid[inv.reason] += 1
        if self.on_invalid is not None:
            self.on_invalid(inv, source)

    # -- time --------------------------------------------------------------------------
    def _expire(self) -> None:
        """Close windows the watermark passed: labels become final and wait for the horizon."""
        wm = self.watermark.value
        for ex in self.joiner.expire(wm):
            self._count_delay(ex)
            self.horizon.push(ex)
        for _ in self.joiner.expire_orphans(wm):
            self.counters.clicks["orphan"] += 1

    def _count_delay(self, ex: LabelledExample) -> None:
        d = (ex.label_ts - ex.impression.ts) / 1000.0
        c = self.counters
        c.label_delay_sum += d
        for k, bound in enumerate(LABEL_DELAY_BUCKETS):
            if d <= bound:
                c.label_delay[k] += 1
                break

    def _release(self, end_ms: int | None = None) -> None:
        """Evaluate every example whose horizon closed, with its leaked features.

        ``end_ms``: the input ended at this event time; examples whose window reaches past it
        are evaluated as incomplete (learnt from, kept out of the AUCs).
        """
        ready = self.horizon.pop_ready(self.watermark.value)
        hold = self.horizon.hold_ms
        if ready:
            leaked = {p.name: p.leaked(ready, self.log, self.horizon_ms) for p in self.probes}
            names = list(leaked)
            for k, ex in enumerate(ready):
                imp = ex.impression
                key = (imp.experiment, imp.arm)
                arm = self.arms.get(key)
                if arm is None:
                    arm = self.arms[key] = ArmEvaluator(imp.experiment, imp.arm, self.cfg, names)
                    self.ended.pop(key, None)
                complete = end_ms is None or imp.ts + hold <= end_ms
                arm.add(ex, {n: leaked[n][k] for n in names}, complete)
            self._since_prune += len(ready)
            self._note_evaluations()
        if self._since_prune >= 20_000:
            self._prune()
        self._end_idle_experiments()

    def _note_evaluations(self) -> None:
        chunks = sum(a.chunks for a in self.arms.values())
        if chunks != self._evaluated_chunks:
            self._evaluated_chunks = chunks
            self.last_evaluation_unix = self.clock()

    def _prune(self) -> None:
        oldest = self.horizon.oldest_ts()
        pending_min = self.watermark.value - self.window_ms
        floor = min(x for x in (oldest, pending_min) if x is not None)
        self.log.prune(floor)
        self._since_prune = 0

    def _end_idle_experiments(self) -> None:
        timeout = self.cfg.time.experiment_idle_timeout_ms
        wm = self.watermark.value
        if wm >= POS_INF or not self._last_seen:
            return
        for exp in [e for e, ts in self._last_seen.items() if wm - ts > timeout]:
            self.end_experiment(exp)

    def end_experiment(self, experiment: str) -> list[ArmStats]:
        """Evaluate what is buffered, keep its final figures, drop its state and series."""
        final = []
        for key in [k for k in self.arms if k[0] == experiment]:
            arm = self.arms.pop(key)
            arm.flush()
            st = self._with_counts(arm.stats(), key)
            self.ended[key] = st
            final.append(st)
        self._last_seen.pop(experiment, None)
        if final:
            self.counters.experiments_ended += 1
        while len(self.ended) > 256:
            self.ended.pop(next(iter(self.ended)))
        return final

    def flush(self) -> None:
        """End of a finite input: close every window and evaluate everything held."""
        end = self.watermark.max_ts
        self.watermark.advance_to(POS_INF)
        self._expire()
        self._release(end_ms=end)
        for arm in self.arms.values():
            arm.flush()
        self._note_evaluations()

    def flush_partial(self) -> None:
        """Evaluate partial chunks now (a live runtime's freshness deadline)."""
        for arm in self.arms.values():
            arm.flush()
        self._note_evaluations()

    # -- output ------------------------------------------------------------------------
    def _with_counts(self, st: ArmStats, key: ArmKey) -> ArmStats:
        st.impressions = self.counters.impressions[key]
        st.clicks = self.counters.attributed[key]
        return st

    def snapshot(self) -> Snapshot:
        arms = [self._with_counts(a.stats(), k) for k, a in sorted(self.arms.items())]
        return Snapshot(
            arms=arms,
            counters=self.counters,
            watermark_ms=self.watermark.value,
            max_event_ms=self.watermark.max_ts,
            pending_impressions=len(self.joiner),
            held_examples=len(self.horizon) + sum(a.buffered for a in self.arms.values()),
            probes=[p.name for p in self.probes],
            learner_names=["clean", *(f"leaky:{p.name}" for p in self.probes), "mllm"],
            last_evaluation_unix=self.last_evaluation_unix,
        )


def now_ms() -> int:
    return int(time.time() * 1000)
