"""Event times grouped by an integer key, for counts over many windows at once.

The future-behaviour probes ask, for every example of a release, "how many events of this
key lie in ``(t, t + H]``?". Asked one example at a time that is a few bisections and a
Python call each; here the events are kept as sorted arrays of composite keys
``key << 40 | (ts - base)``, so a whole release is answered by a few ``np.searchsorted`` calls.
Events are appended to plain lists and merged into the sorted arrays on the next query (a
release), which keeps the per-event cost at two list appends.

>>> idx = WindowIndex()
>>> for key, ts in [(1, 10), (1, 20), (2, 15), (1, 30)]: idx.add(key, ts)
>>> idx.count(np.array([1, 1, 2, 3]), np.array([10, 0, 0, 0]), np.array([30, 15, 15, 99])).tolist()
[2, 1, 1, 0]
>>> idx.prune(15); len(idx)
2
"""

from __future__ import annotations

import numpy as np

#: Bits of the time offset in a composite key: 2**40 ms is about 35 years either side of
#: the base; keys (item or user codes) get the remaining 23 bits.
TIME_BITS = 40
TIME_MASK = (1 << TIME_BITS) - 1
MAX_KEY = (1 << (63 - TIME_BITS)) - 1


#: Code tables up to this size are never renumbered (not worth a pass over the keys).
COMPACT_FLOOR = 1024


def worth_compacting(codes: int, live: int | None = None) -> bool:
    """Whether a code table of ``codes`` entries, ``live`` of them still in use, should be
    renumbered: only once dead codes outnumber live ones (plus the floor), so renumbering
    costs a pass per doubling. ``live=None``: the cheap check before counting them."""
    return codes > COMPACT_FLOOR and (live is None or codes > 2 * live + COMPACT_FLOOR)


def centered_base(lo: int, hi: int) -> int:
    """A base that puts event times ``lo..hi`` in the middle of the time bits (room either side
    for later and for older events). Where the span is wider than the bits (an event dated
    decades before the others), the newest fit and the oldest sit at the bottom, out of every
    window, until a prune drops them: a stream's recent past is what its windows ask about."""
    span = hi - lo
    if span <= TIME_MASK:
        return lo - (TIME_MASK - span) // 2
    return hi - TIME_MASK // 2


def shift_times(comp: np.ndarray, delta: int) -> np.ndarray:
    """Composite keys with ``delta`` added to their time part (a change of base by ``-delta``),
    clipped to the time bits: the order is unchanged."""
    return (comp & ~TIME_MASK) | np.clip((comp & TIME_MASK) + delta, 0, TIME_MASK)


def relative_times(ts: np.ndarray, base: int) -> np.ndarray:
    """Event times as offsets from ``base``, clipped to the time bits (what a composite key
    holds). np.maximum/np.minimum: np.clip's Python wrapper costs more than the clipping."""
    return np.minimum(np.maximum(ts - base, 0), TIME_MASK)


def refit_base(base: int | None, lo: int, hi: int, held: list[np.ndarray]) -> tuple[int, int]:
    """The base for events ``lo..hi`` joining the composite arrays ``held`` (keyed on ``base``),
    and how much their time parts must move (``shift_times``). The base only moves when the new
    events do not fit: an early-dated first record must not clip every later one."""
    if base is not None and lo >= base and hi - base <= TIME_MASK:
        return base, 0
    for comp in held:
        if base is not None and len(comp):
            t = comp & TIME_MASK
            lo, hi = min(lo, int(t.min()) + base), max(hi, int(t.max()) + base)
    new = centered_base(lo, hi)
    return new, (0 if base is None else base - new)


class WindowIndex:
    """A sorted multiset of ``(key, ts)``; counts per key over windows ``(start, end]``.

    Two sorted runs: ``_sorted`` and a smaller ``_recent`` that new events are merged into,
    folded into ``_sorted`` once it is longer than an eighth of it plus 1,024. A count searches
    both. Merging every
    release's events into one array copied the whole window of events per release: on a
    dense stream (a window of millions of events) that cost more than everything else.
    """

    #: Older checkpoints hold no recent run: the class's empty one stands in.
    _recent = np.zeros(0, dtype=np.int64)

    def __init__(self) -> None:
        self._keys: list[int] = []
        self._ts: list[int] = []
        self._sorted = np.zeros(0, dtype=np.int64)
        self._recent = np.zeros(0, dtype=np.int64)
        self.base: int | None = None

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent) + len(self._keys)

    def add(self, key: int, ts: int) -> None:
        self._keys.append(key)
        self._ts.append(ts)

    def _rel(self, ts: np.ndarray) -> np.ndarray:
        return relative_times(ts, self.base)

    def _take_new(self) -> None:
        """Merge the events added since the last query into the recent run (and that into
        the main one when it has grown to an eighth of it)."""
        if self._keys:
            ts = np.array(self._ts, dtype=np.int64)
            self.base, delta = refit_base(self.base, int(ts.min()), int(ts.max()), [self._sorted, self._recent])
            if delta:
                self._sorted = shift_times(self._sorted, delta)
                self._recent = shift_times(self._recent, delta)
            new = (np.array(self._keys, dtype=np.int64) << TIME_BITS) | self._rel(ts)
            self._keys, self._ts = [], []
            merged = np.concatenate([self._recent, new])
            merged.sort(kind="stable")  # the recent run and the new events: a sort of the new ones and a merge
            self._recent = merged
        if len(self._recent) > (len(self._sorted) >> 3) + 1024:
            self._fold()

    def _fold(self) -> None:
        if len(self._recent):
            merged = np.concatenate([self._sorted, self._recent])
            merged.sort(kind="stable")
            self._sorted, self._recent = merged, np.zeros(0, dtype=np.int64)

    def composite(self) -> np.ndarray:
        """The sorted composite keys, with everything added so far merged in."""
        self._take_new()
        self._fold()
        return self._sorted

    def count(self, keys: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Events of ``keys[k]`` with ``start[k] < ts <= end[k]``, for every k."""
        self._take_new()
        if self.base is None:
            return np.zeros(len(keys), dtype=np.int64)
        hi_key = keys.astype(np.int64) << TIME_BITS
        lo_key, hi_key = hi_key | self._rel(start), hi_key | self._rel(end)
        out = np.searchsorted(self._sorted, hi_key, side="right") - np.searchsorted(self._sorted, lo_key, side="right")
        if len(self._recent):
            out += np.searchsorted(self._recent, hi_key, side="right") - np.searchsorted(self._recent, lo_key, side="right")
        return out

    def prune(self, before: int) -> None:
        """Drop events with ``ts <= before``."""
        self._take_new()
        if self.base is not None:
            cut = self._rel(np.int64(before))
            self._sorted = self._sorted[(self._sorted & TIME_MASK) > cut]
            self._recent = self._recent[(self._recent & TIME_MASK) > cut]
        if not len(self._sorted) and not len(self._recent):
            self.base = None  # empty: the next events choose it afresh

    def times(self, key: int) -> np.ndarray:
        """Event times of one key, sorted."""
        comp = self.composite()
        if self.base is None:
            return np.zeros(0, dtype=np.int64)
        lo, hi = np.searchsorted(comp, [key << TIME_BITS, (key + 1) << TIME_BITS])
        return (comp[lo:hi] & TIME_MASK) + self.base

    def keys_in_use(self) -> np.ndarray:
        return np.unique(self.composite() >> TIME_BITS)

    def remap(self, mapping: np.ndarray) -> None:
        """Replace every key ``k`` by ``mapping[k]`` (order-preserving: codes compacted)."""
        comp = self.composite()
        self._sorted = (mapping[comp >> TIME_BITS] << TIME_BITS) | (comp & TIME_MASK)
