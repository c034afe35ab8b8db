"""Impression-click join: turns impressions and clicks into final labels in event time.

An impression is *positive* if a click for it with event time in ``[ts, ts + W]`` arrives
before its label is final, and *negative* once the watermark passes ``ts + W`` without one.
Every click has exactly one outcome, each counted and none able to change a final label:

``attributed``       the first click in the window of a pending impression;
``duplicate``        another click for an impression that already has one;
``late``             a click in ``[ts, ts + W]`` for an impression whose label was already
                     final (negative): it arrived after the watermark closed the window;
``out_of_window``    a click whose event time lies outside ``[ts, ts + W]`` (whether its
                     impression's label is final yet or not);
``orphan``           a click for no impression known: never seen (it is kept while the
                     watermark allows its impression to still arrive, so out-of-order pairs
                     join), or finalised more than a window before the click arrived.

>>> from stream_lis.events import Impression, Click
>>> j = ClickJoiner(window_ms=100)
>>> imp = Impression(impression_id="i1", ts=0, user_id="u", item_id="a", experiment="e", arm="c")
>>> list(j.add_impression(imp))  # outcomes of clicks that arrived before it
[]
>>> j.add_click(Click(impression_id="i1", ts=40)), j.add_click(Click(impression_id="i1", ts=41))
('attributed', 'duplicate')
>>> [(x.impression.impression_id, x.label) for x in j.expire(watermark=101)]
[('i1', 1)]
>>> j.add_click(Click(impression_id="i1", ts=50)), j.add_click(Click(impression_id="i1", ts=101))
('duplicate', 'out_of_window')
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections import deque
from typing import Iterator, Sequence

import msgspec

from .events import Click, Impression
from .packing import pack_array
from .watermark import POS_INF

CLICK_OUTCOMES = ("attributed", "duplicate", "late", "out_of_window", "orphan")


class LabelledExample(msgspec.Struct, array_like=True, gc=False):
    """An impression with its final label; ``click_ts`` is set for positives."""

    impression: Impression
    label: int
    click_ts: int | None
    label_ts: int


class _Pending(msgspec.Struct, array_like=True, gc=False, frozen=True):
    impression: Impression
    click_ts: int | None = None


class ClickJoiner:
    """Pending impressions keyed by id, closed in deadline order by the watermark.

    Memory is bounded by the attribution window: a pending impression lives ``W`` of event
    time; a final label is remembered another ``W`` (to tell *late* clicks from orphans).
    """

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.pending: dict[str, _Pending] = {}
        self._deadlines = Deadlines()
        # impression_id -> ``final_value(deadline, label)`` of recently finalised impressions,
        # in finalisation order.
        self._final: dict[str, int] = {}
        self._final_order: deque[tuple[int, str]] = deque()
        # Clicks whose impression has not arrived yet: impression_id -> clicks.
        self._early: dict[str, list[Click]] = {}
        self._early_order: list[tuple[int, str]] = []  # heap by event time

    def __len__(self) -> int:
        return len(self.pending)

    def knows(self, impression_id: str) -> bool:
        """True for a pending or recently finalised impression (duplicate detection)."""
        return impression_id in self.pending or impression_id in self._final

    def add_impression(self, imp: Impression) -> Sequence[str]:
        """Start waiting for clicks; returns outcomes of clicks that arrived before it."""
        self.pending[imp.impression_id] = _Pending(imp)
        self._deadlines.push(imp.ts + self.window_ms, imp.impression_id)
        if not self._early:
            return ()
        early = self._early.pop(imp.impression_id, None)
        iid = imp.impression_id
        # Looked up per click: an attributed click replaces the record the next one sees.
        return [self._attribute(iid, self.pending[iid], c) for c in early] if early else ()

    def add_click(self, click: Click) -> str:
        """Apply a click; returns its outcome (one of ``CLICK_OUTCOMES``), or ``"held"`` when its
        impression has not arrived yet (the outcome is decided when it does, or when the
        watermark passes the click: ``orphan``)."""
        p = self.pending.get(click.impression_id)
        if p is not None:
            return self._attribute(click.impression_id, p, click)
        final = self._final.get(click.impression_id)
        if final is not None:
            deadline, label = final >> 1, final & 1
            if not deadline - self.window_ms <= click.ts <= deadline:
                return "out_of_window"
            return "duplicate" if label == 1 else "late"
        self._early.setdefault(click.impression_id, []).append(click)
        heapq.heappush(self._early_order, (click.ts, click.impression_id))
        return "held"

    def _attribute(self, iid: str, p: _Pending, click: Click) -> str:
        ts = p.impression.ts
        if not ts <= click.ts <= ts + self.window_ms:
            return "out_of_window"
        if p.click_ts is not None:
            return "duplicate"
        # A new record rather than a change to the old one: a frozen view (``freeze``) may
        # still hold the old one for a checkpoint being encoded.
        self.pending[iid] = _Pending(p.impression, click.ts)
        return "attributed"

    def expire(self, watermark: int) -> list[LabelledExample]:
        """Finalise every impression whose window closed (``watermark > ts + W``)."""
        out: list[LabelledExample] = []
        due = self._deadlines.pop_due(watermark)
        if due:
            pop, final, order = self.pending.pop, self._final, self._final_order
            for pair in due:
                deadline, iid = pair
                p = pop(iid, None)
                if p is None:  # finalised already
                    continue
                ct = p.click_ts
                if ct is not None:
                    out.append(LabelledExample(p.impression, 1, ct, ct))
                    final[iid] = deadline << 1 | 1  # final_value(deadline, 1), inlined
                else:
                    out.append(LabelledExample(p.impression, 0, None, deadline))
                    final[iid] = deadline << 1
                order.append(pair)
        # Forget final labels a full window later, and early clicks the watermark passed.
        fo = self._final_order
        if fo and fo[0][0] + self.window_ms < watermark:
            cut, forget = watermark - self.window_ms, self._final.pop
            while fo and fo[0][0] < cut:
                forget(fo.popleft()[1], None)
        return out

    def has_orphans_before(self, watermark: int) -> bool:
        eo = self._early_order
        return bool(eo) and eo[0][0] < watermark

    def expire_orphans(self, watermark: int) -> Iterator[Click]:
        """Held clicks older than the watermark: no impression that can still arrive has them
        in its window, so they are orphans. Later clicks held for the same id wait on."""
        eo, early = self._early_order, self._early
        while eo and eo[0][0] < watermark:
            _, iid = heapq.heappop(eo)
            clicks = early.get(iid)
            if not clicks:
                continue
            keep = [c for c in clicks if c.ts >= watermark]
            if keep:
                early[iid] = keep
                yield from (c for c in clicks if c.ts < watermark)
            else:
                del early[iid]
                yield from clicks

    def freeze(self) -> "FrozenJoiner":
        """The state a checkpoint saves, as shallow copies: a few C-level list and dict copies
        (about 0.1 s for a million pending impressions, against 3 s to encode them), no
        encoding. The stage holds still only for this; ``FrozenJoiner.state`` encodes it later,
        on another thread, while the joiner goes on (pending records are replaced, never
        changed, so the copies hold)."""
        return FrozenJoiner(list(self.pending.values()), {k: list(v) for k, v in self._early.items()},
                            list(self._final_order), dict(self._final), list(self._early_order))

    def state(self) -> dict:
        """Plain-data state for checkpoints (see ``FrozenJoiner.state``)."""
        return self.freeze().state()

    def load(self, state: dict) -> None:
        packed = state.get("held")
        if packed is not None:
            held = _HELD_DECODER.decode(packed)
            pending, early = held.pending, held.early
        else:  # the older layout: a list of pending records and a dict of early clicks
            pending = [msgspec.convert(p, _Pending) if not isinstance(p, _Pending) else p for p in state["pending"]]
            early = {k: [msgspec.convert(c, Click) if not isinstance(c, Click) else c for c in v]
                     for k, v in state["early"].items()}
        self.pending = {}
        self._deadlines = Deadlines()
        for p in pending:
            self.pending[p.impression.impression_id] = p
            self._deadlines.push(p.impression.ts + self.window_ms, p.impression.impression_id)
        finals = state.get("finals")
        if finals is not None:
            order, final = _FINALS_DECODER.decode(finals)
        else:  # the older layout: pickled
            order, final = [tuple(x) for x in state["final"]], dict(state["final_labels"])
        self._final_order = deque(order)
        if any(v in (0, 1) for v in final.values()):
            # A checkpoint of a release that kept bare labels: the deadline is in the order.
            final = {iid: final_value(d, final[iid]) if final[iid] in (0, 1) else final[iid]
                     for d, iid in order if iid in final}
        self._final = final
        self._early = early
        self._early_order = [tuple(x) for x in state["early_order"]]
        heapq.heapify(self._early_order)


def final_value(deadline: int, label: int) -> int:
    """A final label and its impression's deadline in one int (``>> 1``, ``& 1``): a click
    arriving after the label is final is still told ``out_of_window`` from ``late``. A
    deadline is at least the window (event times are >= 0), so a value is never 0 or 1, the
    bare labels of older checkpoints."""
    return deadline << 1 | label


class Deadlines:
    """(deadline, impression id) pairs, taken in order once the watermark passes them.

    A heap pays O(log n) tuple comparisons for every pop. Here pairs are appended unsorted
    and sorted in one C call when the watermark first passes the earliest of them: a pair is
    pushed at least a window before it is due (its impression is not late), so that happens
    about once per window of event time, on nearly ordered data, and a pop is then a slice
    of a sorted list. Pairs come out exactly as a heap gives them: by deadline, then id.

    >>> d = Deadlines()
    >>> for t, i in [(30, "c"), (10, "b"), (10, "a"), (20, "d")]:
    ...     d.push(t, i)
    >>> d.pop_due(20), d.pop_due(20)
    ([(10, 'a'), (10, 'b')], [])
    >>> d.push(5, "e"); d.pop_due(31)
    [(5, 'e'), (20, 'd'), (30, 'c')]
    """

    __slots__ = ("_sorted", "_pos", "_new", "_new_min")

    def __init__(self) -> None:
        self._sorted: list[tuple[int, str]] = []
        self._pos = 0  # _sorted[:_pos] were taken
        self._new: list[tuple[int, str]] = []
        self._new_min = POS_INF

    def push(self, deadline: int, iid: str) -> None:
        self._new.append((deadline, iid))
        if deadline < self._new_min:
            self._new_min = deadline

    def pop_due(self, watermark: int) -> list[tuple[int, str]]:
        """Every pair with ``deadline < watermark``, in (deadline, id) order."""
        if self._new_min < watermark:
            rest = self._sorted[self._pos:]
            rest += self._new
            rest.sort()  # timsort: the sorted rest and the nearly ordered new pairs, merged
            self._sorted, self._pos, self._new, self._new_min = rest, 0, [], POS_INF
        s, pos = self._sorted, self._pos
        if pos < len(s) and s[pos][0] < watermark:
            end = bisect_left(s, (watermark,), pos)  # (d, id) < (watermark,) iff d < watermark
            due = s[pos:end]
            if end > 4096 and 2 * end > len(s):  # drop what was taken (memory), O(1) per pair
                del s[:end]
                end = 0
            self._pos = end
            return due
        return []


class FrozenJoiner:
    """A joiner's state at one instant, not yet encoded (``ClickJoiner.freeze``)."""

    __slots__ = ("pending", "early", "final_order", "final", "early_order")

    def __init__(self, pending: list["_Pending"], early: dict[str, list[Click]], final_order: list[tuple[int, str]],
                 final: dict[str, int], early_order: list[tuple[int, str]]) -> None:
        self.pending, self.early, self.final_order, self.final = pending, early, final_order, final
        self.early_order = early_order

    def state(self) -> dict:
        """Plain-data state for checkpoints.

        The pending impressions and early clicks (up to ``limits.max_pending_impressions``
        each) go as one msgpack blob: pickled one struct at a time they took ten times as long.
        So do the final labels (as many as a window holds), which pickled took half as long
        again as the pending impressions. The long lists are encoded a chunk at a time
        (``packing.pack_array``): a stage beside the thread encoding them waits at most a
        chunk (about 10 ms) for the interpreter lock.

        The older layout's keys stay, empty, so a previous release resumes from the checkpoint
        (without those events and labels) rather than failing on it.
        """
        return {
            "pending": [],
            "early": {},
            "held": pack_array(self.pending, self.early),  # a _Held: an array of its two fields
            "final": [],
            "final_labels": {},
            "finals": pack_array(self.final_order, self.final),
            "early_order": self.early_order,
        }


class _Held(msgspec.Struct, array_like=True):
    """What a checkpoint holds of a joiner as msgpack: its pending impressions, early clicks
    (``FrozenJoiner.state`` writes the same array piece by piece)."""

    pending: list[_Pending]
    early: dict[str, list[Click]]


_HELD_DECODER = msgspec.msgpack.Decoder(_Held)
#: The final labels: (deadline, impression id) in finalisation order, and id ->
#: ``final_value(deadline, label)`` (a bare label in older checkpoints).
_FINALS_DECODER = msgspec.msgpack.Decoder(tuple[list[tuple[int, str]], dict[str, int]])
