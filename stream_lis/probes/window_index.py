"""Event times grouped by an integer key, for counts over many windows at once.

The future-behaviour probes ask, for every example of a release, "how many events of this
key lie in ``(t, t + H]``?". Asked one example at a time that is a few bisections and a
Python call each; here the events are kept as one sorted array of composite keys
``key << 40 | (ts - base)``, so a whole release is answered by two ``np.searchsorted`` calls.
Events are appended to plain lists and merged into the sorted array on the next query (a
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
    """A sorted multiset of ``(key, ts)``; counts per key over windows ``(start, end]``."""

    def __init__(self) -> None:
        self._keys: list[int] = []
        self._ts: list[int] = []
        self._sorted = np.zeros(0, dtype=np.int64)
        self.base: int | None = None

    def __len__(self) -> int:
        return len(self._sorted) + len(self._keys)

    def add(self, key: int, ts: int) -> None:
        self._keys.append(key)
        self._ts.append(ts)

    def _rel(self, ts: np.ndarray) -> np.ndarray:
        return relative_times(ts, self.base)

    def composite(self) -> np.ndarray:
        """The sorted composite keys, with everything added so far merged in."""
        if self._keys:
            ts = np.array(self._ts, dtype=np.int64)
            self.base, delta = refit_base(self.base, int(ts.min()), int(ts.max()), [self._sorted])
            if delta:
                self._sorted = shift_times(self._sorted, delta)
            new = (np.array(self._keys, dtype=np.int64) << TIME_BITS) | self._rel(ts)
            self._keys, self._ts = [], []
            merged = np.concatenate([self._sorted, new])
            merged.sort(kind="stable")  # two sorted runs: a merge
            self._sorted = merged
        return self._sorted

    def count(self, keys: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Events of ``keys[k]`` with ``start[k] < ts <= end[k]``, for every k."""
        comp = self.composite()
        if self.base is None or not len(comp):
            return np.zeros(len(keys), dtype=np.int64)
        hi_key = keys.astype(np.int64) << TIME_BITS
        lo = np.searchsorted(comp, hi_key | self._rel(start), side="right")
        hi = np.searchsorted(comp, hi_key | self._rel(end), side="right")
        return hi - lo

    def prune(self, before: int) -> None:
        """Drop events with ``ts <= before``."""
        comp = self.composite()
        if self.base is not None and len(comp):
            self._sorted = comp[(comp & TIME_MASK) > self._rel(np.int64(before))]
        if not len(self._sorted):
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
