"""Stage one of the core: validated events in, per-arm records out, on one event clock.

The labeller owns the watermark and the impression-click join. For every accepted event it
emits what the arm's evaluation needs, in order:

``Seen(imp)``             an accepted impression (the arm's behaviour log records it);
``Clicked(imp, ts)``      the click attributed to it (behaviour log);
``Labelled(example)``     its final label, once the watermark passed ``ts + W``.

In the embedded runtime one labeller feeds the evaluation directly; in the Kafka runtime
there is one per input partition and its records travel, by arm, to the worker that
owns the arm. Its state is plain data (``state``/``load``), checkpointed with the offsets it
reflects.

>>> from stream_lis.events import Impression, Click
>>> lab = Labeller(window_ms=100, lateness_ms=0)
>>> imp = Impression(impression_id="i", ts=0, user_id="u", item_id="a", experiment="e", arm="c")
>>> out = lab.process([imp, Click(impression_id="i", ts=10), Click(impression_id="z", ts=300)])
>>> [type(r).__name__ for r in out]
['Seen', 'Clicked', 'Labelled']
>>> out[-1].example.label, dict(lab.counters.clicks)  # the stray click is held: its impression may come
(1, {'attributed': 1})
>>> lab.flush(), dict(lab.counters.clicks)
([], {'attributed': 1, 'orphan': 1})
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Sequence, Union

import msgspec
import numpy as np

from .events import Click, Impression, Invalid, encode_event
from .join import ClickJoiner, FrozenJoiner, LabelledExample
from .overload import WARNINGS
from .watermark import NEG_INF, POS_INF, Watermark

#: Upper bounds (seconds) of the label-delay histogram: event time from impression to label.
LABEL_DELAY_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, math.inf)

_DELAY_BOUNDS = np.array(LABEL_DELAY_BUCKETS)

#: Where a rejected record goes, with its source; what it returns is the sink's own (a
#: Kafka send's future, which a side table's feed waits for; nothing for a file).
InvalidSink = Callable[[Invalid, str], Any]


class Seen(msgspec.Struct, tag="seen", array_like=True, gc=False):
    impression: Impression


class Clicked(msgspec.Struct, tag="clicked", array_like=True, gc=False):
    impression: Impression
    ts: int


class Labelled(msgspec.Struct, tag="labelled", array_like=True, gc=False):
    example: LabelledExample


ArmRecord = Union[Seen, Clicked, Labelled]


@dataclass
class LabelCounters:
    """Counts of the join stage since start (checkpointed with it)."""

    invalid: Counter[str] = field(default_factory=Counter)
    clicks: Counter[str] = field(default_factory=Counter)
    label_delay: list[int] = field(default_factory=lambda: [0] * len(LABEL_DELAY_BUCKETS))
    label_delay_sum: float = 0.0
    records: int = 0
    #: The same, positives only: impression to attributed click. Every negative's delay is the
    #: attribution window itself, so quantiles of all labels interpolate between the buckets
    #: around it and follow the CTR, not the clicks.
    click_delay: list[int] = field(default_factory=lambda: [0] * len(LABEL_DELAY_BUCKETS))
    click_delay_sum: float = 0.0

    def merge(self, other: "LabelCounters") -> "LabelCounters":
        out = LabelCounters(self.invalid + other.invalid, self.clicks + other.clicks,
                            [a + b for a, b in zip(self.label_delay, other.label_delay)],
                            self.label_delay_sum + other.label_delay_sum, self.records + other.records,
                            [a + b for a, b in zip(self.click_delay, other.click_delay)],
                            self.click_delay_sum + other.click_delay_sum)
        return out

    def state(self) -> dict:
        return {"invalid": dict(self.invalid), "clicks": dict(self.clicks), "label_delay": list(self.label_delay),
                "label_delay_sum": self.label_delay_sum, "records": self.records,
                "click_delay": list(self.click_delay), "click_delay_sum": self.click_delay_sum}

    @classmethod
    def from_state(cls, s: dict) -> "LabelCounters":
        # Checkpoints from before the click delay: it counts from 0.
        click = s.get("click_delay") or [0] * len(LABEL_DELAY_BUCKETS)
        return cls(Counter(s["invalid"]), Counter(s["clicks"]), list(s["label_delay"]), float(s["label_delay_sum"]),
                   int(s["records"]), list(click), float(s.get("click_delay_sum", 0.0)))


class Labeller:
    """Watermark + join; not thread-safe."""

    def __init__(self, window_ms: int, lateness_ms: int, max_pending: int = 2_000_000,
                 on_invalid: InvalidSink | None = None, max_future_skew_ms: int = 0,
                 clock: Callable[[], float] = time.time, max_arms: int = 0, arm_idle_ms: int = 0) -> None:
        """``max_future_skew_ms`` > 0 rejects events dated that far ahead of ``clock()``;
        ``max_arms`` > 0 rejects impressions of one arm more than that many active ones (an
        arm is active until the watermark is ``arm_idle_ms`` past its last impression)."""
        self.window_ms = window_ms
        self.max_future_skew_ms = max_future_skew_ms
        self.clock = clock
        self.watermark = Watermark(lateness_ms)
        self.joiner = ClickJoiner(window_ms)
        self.counters = LabelCounters()
        self.max_pending = max_pending
        self.on_invalid = on_invalid
        self._expired_at: int | None = NEG_INF
        #: Labels finalised in this call, not yet in the delay histograms (``_bin_delays``).
        self._unbinned: list[list[LabelledExample]] = []
        self.max_arms, self.arm_idle_ms = max_arms, arm_idle_ms
        #: (experiment, arm) -> event time of its last impression
        self.arms: dict[tuple[str, str], int] = {}

    def _admit_arm(self, ev: Impression) -> bool:
        """Track the arm's last impression; False when it would be one arm too many."""
        key = (ev.experiment, ev.arm)
        last = self.arms.get(key)
        if last is None:
            if len(self.arms) >= self.max_arms:
                idle_before = self.watermark.value - self.arm_idle_ms
                for k in [k for k, ts in self.arms.items() if ts < idle_before]:
                    del self.arms[k]
                if len(self.arms) >= self.max_arms:
                    return False
            self.arms[key] = ev.ts
        elif ev.ts > last:
            self.arms[key] = ev.ts
        return True

    def reject(self, inv: Invalid, source: str) -> None:
        self.counters.invalid[inv.reason] += 1
        if self.on_invalid is not None:
            self.on_invalid(inv, source)

    def process(self, events: Sequence[Impression | Click], source: str = "input",
                raws: Sequence[bytes | str] | None = None, sources: Sequence[str] | None = None) -> list[ArmRecord]:
        """Apply events in arrival order.

        ``raws`` and ``sources`` (parallel to ``events``, optional) are each event's original
        record and where it came from, for the dead letter of an event rejected here.
        """
        out: list[ArmRecord] = []
        wm, joiner, c = self.watermark, self.joiner, self.counters
        pending, final, max_pending = joiner.pending, joiner._final, self.max_pending
        horizon = int(self.clock() * 1000) + self.max_future_skew_ms if self.max_future_skew_ms > 0 else None
        c.records += len(events)
        for k, ev in enumerate(events):
            if horizon is not None and ev.ts > horizon:
                self._reject_event(k, ev, "future_event", f"ts {ev.ts} is more than limits.max_future_skew ahead of the clock",
                                   raws, sources, source)
                continue
            if type(ev) is Impression:
                ts = ev.ts
                # The usual impression's checks, inlined (this loop runs per event): on time,
                # not seen before, room to wait, its arm admitted.
                if ts < wm.value:
                    self._reject_event(k, ev, "late_event", f"ts {ts} < watermark {wm.value}", raws, sources, source)
                    continue
                if ev.impression_id in pending or ev.impression_id in final:
                    self._reject_event(k, ev, "duplicate_impression", ev.impression_id, raws, sources, source)
                    continue
                # On time and new, it moves the clock even if it is shed below: a shed event still
                # says what time it is. Otherwise an experiment starting while every arm slot is
                # held by an idle one would be shed whole: its events could never move the clock
                # past the idle arms' timeout.
                if ts > wm.max_ts:
                    wm.observe(ts)
                if len(pending) >= max_pending:
                    self._reject_event(k, ev, "shed_overload", f"{len(pending)} pending impressions >= "
                                       "limits.max_pending_impressions", raws, sources, source)
                    WARNINGS.note("pending_impressions", 1, f"limits.max_pending_impressions={self.max_pending}")
                elif self.max_arms and not self._admit_arm(ev):
                    self._reject_event(k, ev, "shed_overload", f"({ev.experiment!r}, {ev.arm!r}) would be one arm more "
                                       "than limits.max_arms", raws, sources, source)
                    WARNINGS.note("arms", 1, f"limits.max_arms={self.max_arms}")
                else:
                    out.append(Seen(ev))
                    early = joiner.add_impression(ev)
                    if early:
                        for outcome in early:
                            self._count_click(outcome, ev, out)
            else:
                wm.observe(ev.ts)  # before the bound below, for the same reason
                if len(joiner._early) >= self.max_pending and not joiner.knows(ev.impression_id):
                    self._reject_event(k, ev, "shed_overload", f"{len(joiner._early)} clicks waiting for their impression "
                                       ">= limits.max_pending_impressions", raws, sources, source)
                    WARNINGS.note("pending_clicks", 1, f"limits.max_pending_impressions={self.max_pending}")
                else:
                    outcome = joiner.add_click(ev)
                    if outcome != "held":
                        p = joiner.pending.get(ev.impression_id)
                        self._count_click(outcome, p.impression if p is not None else None, out)
                    elif ev.ts < wm.value:
                        self._expired_at = None  # an orphan already: count it now, not at the next tick
            if wm.value != self._expired_at:
                self._expire(out)
        if self._unbinned:
            self._bin_delays()
        return out

    def _reject_event(self, k: int, ev: Impression | Click, reason: str, detail: str,
                      raws: Sequence[bytes | str] | None, sources: Sequence[str] | None, source: str) -> None:
        """Dead-letter ``events[k]`` of a ``process`` call with its original bytes and source."""
        # ``records`` counts accepted events: every input record is counted once, there or
        # under its reason (dashboards take invalid / (records + invalid) as the reject rate).
        self.counters.records -= 1
        raw = raws[k] if raws is not None else encode_event(ev)
        self.reject(Invalid(reason, detail, raw.encode() if isinstance(raw, str) else raw),
                    sources[k] if sources is not None else source)

    def _count_click(self, outcome: str, imp: Impression | None, out: list[ArmRecord]) -> None:
        self.counters.clicks[outcome] += 1
        if outcome == "attributed" and imp is not None:
            ts = self.joiner.pending[imp.impression_id].click_ts
            # A click older than the watermark still labels its impression, but is kept out of
            # the behaviour log: whether an example already due would have seen it depends on
            # batching, and leaked features must depend on the events alone.
            if ts is not None and not self.watermark.is_late(ts):
                out.append(Clicked(imp, ts))

    def _expire(self, out: list[ArmRecord]) -> None:
        wm = self._expired_at = self.watermark.value  # expiry depends on the watermark alone
        done = self.joiner.expire(wm)
        if done:
            out.extend(map(Labelled, done))
            self._unbinned.append(done)
        if self.joiner.has_orphans_before(wm):
            for _ in self.joiner.expire_orphans(wm):
                self.counters.clicks["orphan"] += 1

    def _bin_delays(self) -> None:
        """Count the labels finalised since the last call in the delay histograms: once per
        ``process`` / ``advance_to`` call, column-wise (a label's delay is fixed when it is
        final, so when it is counted within the call changes nothing)."""
        done = self._unbinned[0] if len(self._unbinned) == 1 else [ex for d in self._unbinned for ex in d]
        self._unbinned = []
        ms = np.array([ex.label_ts - ex.impression.ts for ex in done], dtype=np.int64)
        bins = np.searchsorted(_DELAY_BOUNDS, ms / 1000.0, side="left")  # as bisect_left: first bound >= d
        clicked = np.array([ex.label for ex in done], dtype=bool)
        c = self.counters
        for hist, b, total in ((c.label_delay, bins, ms), (c.click_delay, bins[clicked], ms[clicked])):
            if len(b):
                for k, n in enumerate(np.bincount(b, minlength=len(hist)).tolist()):
                    hist[k] += n
        # Sums of whole milliseconds: exact, whatever the batching.
        c.label_delay_sum += int(ms.sum()) / 1000.0
        c.click_delay_sum += int(ms[clicked].sum()) / 1000.0

    def advance_to(self, ts: int) -> list[ArmRecord]:
        """Move the clock (end of input: ``POS_INF``) and emit the labels that became final."""
        self.watermark.advance_to(ts)
        out: list[ArmRecord] = []
        self._expire(out)
        if self._unbinned:
            self._bin_delays()
        return out

    def flush(self) -> list[ArmRecord]:
        return self.advance_to(POS_INF)

    def freeze(self) -> "FrozenLabeller":
        """The state a checkpoint saves, copied but not encoded: the stage holds still only
        for this (``ClickJoiner.freeze``); ``FrozenLabeller.state`` encodes it later."""
        return FrozenLabeller(self.watermark.state(), self.joiner.freeze(), self.counters.state(),
                              [[e, a, ts] for (e, a), ts in self.arms.items()])

    def state(self) -> dict:
        return self.freeze().state()

    def load(self, state: dict) -> None:
        self.watermark.load(state["watermark"])
        self.joiner.load(state["joiner"])
        self.counters = LabelCounters.from_state(state["counters"])
        self.arms = {(e, a): int(ts) for e, a, ts in state.get("arms", [])}
        self._expired_at = NEG_INF


class FrozenLabeller(NamedTuple):
    """A labeller's state at one instant, not yet encoded (``Labeller.freeze``)."""

    watermark: dict
    joiner: FrozenJoiner
    counters: dict
    arms: list

    def state(self) -> dict:
        return {"watermark": self.watermark, "joiner": self.joiner.state(), "counters": self.counters, "arms": self.arms}
