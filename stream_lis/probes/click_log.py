"""An arm's attributed clicks as columns, sorted by item and by user, for window queries.

``co_click`` and ``next_click`` ask, for every example of a release, who clicked this item in
``(t, t + H]`` and what those users (or this example's user) clicked there. Answered one
example at a time over per-item and per-user lists of click tuples, that cost microseconds of
Python per example. Here the clicks are two arrays of composite keys
``code << TIME_BITS | (ts - base)`` (as in ``WindowIndex``), sorted, with payload columns
beside them; a whole release is one compiled loop (``probes.kernels``).

Users and items get dense integer codes; after a prune, the codes of users and items with no
click left are reclaimed. Clicks are appended to lists and inserted into the sorted columns
on the next query. Clicks of one user or item at the same millisecond keep their arrival
order.

>>> log = ClickLog()
>>> log.add("u1", "a", 60, "i1"); log.add("u2", "a", 61, "i2"); log.add("u1", "b", 70, "i3")
>>> log.item_clicks("a", 50, 100)
[(60, 'u1', 'i1'), (61, 'u2', 'i2')]
>>> log.user_clicks("u1", 60, 100)
[(70, 'b', 'i3')]
>>> log.prune(60); len(log), log.clicked
(2, {'i2': 61, 'i3': 70})
"""

from __future__ import annotations

import heapq
import weakref
from itertools import repeat
from typing import Sequence
from zlib import crc32

import numpy as np

from ..join import LabelledExample
from . import kernels, release
from .window_index import (MAX_KEY, TIME_BITS, TIME_MASK, refit_base, relative_times, shift_times,
                           worth_compacting)

_EMPTY = np.zeros(0, dtype=np.int64)


class _Sorted:
    """Clicks sorted by one key (item or user): composite keys and, parallel, the other id's
    code and the click's serial number."""

    __slots__ = ("comp", "other", "serial", "_starts")

    def __init__(self) -> None:
        self.comp, self.other, self.serial = _EMPTY, _EMPTY, _EMPTY
        self._starts: tuple[weakref.ref, np.ndarray, int] | None = None

    def __getstate__(self) -> tuple:
        return self.comp, self.other, self.serial

    def __setstate__(self, s: tuple) -> None:
        self.comp, self.other, self.serial = s
        self._starts = None

    def starts(self, n_codes: int) -> np.ndarray:
        """Where each code's run begins (``n_codes + 1`` entries, the last the end): the
        kernels search one code's clicks, not the whole log. Kept while ``comp`` is the same
        array (every change replaces it)."""
        st = self._starts
        if st is None or st[0]() is not self.comp or st[2] != n_codes:
            keys = np.arange(n_codes + 1, dtype=np.int64) << TIME_BITS
            # a weak reference: the columns a prune replaced are not kept alive for this
            st = self._starts = (weakref.ref(self.comp), np.searchsorted(self.comp, keys), n_codes)
        return st[1]

    def merge(self, comp: np.ndarray, other: np.ndarray, serial: np.ndarray) -> None:
        """Insert new clicks; after equal keys already held, in arrival order. Costs a binary
        search per new click and one copy of each column (not a sort of the whole log)."""
        order = np.argsort(comp, kind="stable")
        comp = comp[order]
        pos = np.searchsorted(self.comp, comp, side="right")
        self.comp = np.insert(self.comp, pos, comp)
        self.other = np.insert(self.other, pos, other[order])
        self.serial = np.insert(self.serial, pos, serial[order])

    def keep(self, mask: np.ndarray) -> None:
        self.comp, self.other, self.serial = self.comp[mask], self.other[mask], self.serial[mask]

    def window(self, code: int, start: int, end: int) -> slice:
        key = code << TIME_BITS
        lo, hi = np.searchsorted(self.comp, [key | start, key | end], side="right")
        return slice(int(lo), int(hi))


class _Codes:
    """Dense integer codes of string ids (users or items)."""

    __slots__ = ("code", "names")

    def __init__(self) -> None:
        self.code: dict[str, int] = {}
        self.names: list[str] = []

    def __getstate__(self) -> tuple:
        return self.code, self.names

    def __setstate__(self, s: tuple) -> None:
        self.code, self.names = s

    def add(self, name: str) -> int:
        c = self.code[name] = len(self.names)
        self.names.append(name)
        return c

    def of(self, names: Sequence[str]) -> np.ndarray:
        """Codes of ``names`` (``-1``: never seen, or no click left)."""
        return np.fromiter(map(self.code.get, names, repeat(-1)), dtype=np.int64, count=len(names))

    def remap(self, live: np.ndarray) -> np.ndarray:
        """Keep the codes in ``live`` (sorted), renumbered 0..; returns old code -> new code."""
        mapping = np.full(len(self.names), -1, dtype=np.int64)
        mapping[live] = np.arange(len(live))
        self.names = [self.names[c] for c in live.tolist()]
        self.code = {n: k for k, n in enumerate(self.names)}
        return mapping


class ClickLog:
    """Attributed clicks ``(user, item, ts, impression id)``, queryable by item or by user."""

    def __init__(self) -> None:
        self.base: int | None = None
        self.items, self.users = _Codes(), _Codes()
        self.by_item, self.by_user = _Sorted(), _Sorted()
        # Clicks added since the last merge: item code, user code, ts, serial.
        self._new: tuple[list[int], list[int], list[int], list[int]] = ([], [], [], [])
        self._next_serial = 0
        #: impression id -> its clicks' serial number (what the probes leave out: the label)
        self._serial: dict[str, int] = {}
        self._iids: dict[int, str] | None = None  # serial -> impression id, built on demand
        #: impression id -> event time of its logged click
        self.clicked: dict[str, int] = {}
        # (ts, impression id) of every entry ``clicked`` was given, a heap: a prune takes off
        # what it drops instead of rebuilding the dicts (a pass over a dense stream's window).
        self._by_time: list[tuple[int, str]] = []
        # token prefix -> (column hash, token string) per item code
        self._tokens: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        # the last release asked about and its kernel arguments (see ``_args``)
        self._last: tuple | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_last": None, "_iids": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "_by_time" not in state:  # a checkpoint from before the heap
            self.reindex()

    def reindex(self) -> None:
        """Rebuild the prune heap from ``clicked`` (after ``clicked`` was set wholesale)."""
        self._by_time = [(ts, iid) for iid, ts in self.clicked.items()]
        heapq.heapify(self._by_time)

    def __len__(self) -> int:
        return len(self.by_item.comp) + len(self._new[0])

    def add(self, user_id: str, item_id: str, ts: int, impression_id: str) -> None:
        if len(self.items.names) >= MAX_KEY or len(self.users.names) >= MAX_KEY:
            self._compact(force=True)  # before any code is looked up: it renumbers both
        ic = self.items.code.get(item_id)
        if ic is None:
            ic = self.items.add(item_id)
        uc = self.users.code.get(user_id)
        if uc is None:
            uc = self.users.add(user_id)
        # An impression id clicked again (one that came back after the join forgot it) keeps
        # its serial: the probes leave out every click of the example's impression id.
        serial = self._serial.get(impression_id)
        if serial is None:
            serial = self._serial[impression_id] = self._next_serial
            self._next_serial += 1
        items, users, times, serials = self._new
        items.append(ic)
        users.append(uc)
        times.append(ts)
        serials.append(serial)
        prev = self.clicked.get(impression_id)
        if prev is None or ts > prev:  # its latest click: a prune keeps the id while any is held
            self.clicked[impression_id] = ts
            heapq.heappush(self._by_time, (ts, impression_id))

    def _rel(self, ts: np.ndarray) -> np.ndarray:
        return relative_times(ts, self.base)

    def _merge(self) -> None:
        items, users, times, serials = self._new
        if not times:
            return
        self._last = self._iids = None
        ts = np.array(times, dtype=np.int64)
        self.base, delta = refit_base(self.base, int(ts.min()), int(ts.max()), [self.by_item.comp])
        if delta:
            for view in (self.by_item, self.by_user):
                view.comp = shift_times(view.comp, delta)
        rel = self._rel(ts)
        ic, uc = np.array(items, dtype=np.int64), np.array(users, dtype=np.int64)
        serial = np.array(serials, dtype=np.int64)
        self.by_item.merge((ic << TIME_BITS) | rel, uc, serial)
        self.by_user.merge((uc << TIME_BITS) | rel, ic, serial)
        self._new = ([], [], [], [])

    # -- a release at once ----------------------------------------------------------------
    def _args(self, examples: Sequence[LabelledExample], horizon_ms: int) -> tuple[np.ndarray, ...]:
        """The kernels' view of a release: item and user codes, window bounds relative to
        ``base``, own clicks' serials. Both click probes ask for the same release: kept once."""
        # Cached for the release object, which only a ``release.shared`` scope hands out twice.
        rel = release.columns(examples)
        last = self._last
        if last is not None and last[0] is rel and last[1] == horizon_ms and not self._new[2]:
            return last[2]
        self._merge()
        t = rel.ts
        items = self.items.of(rel.item_ids)
        users = self.users.of(rel.user_ids)
        get = self._serial.get
        own = np.fromiter(map(get, rel.impression_ids, repeat(-1)), dtype=np.int64, count=len(examples))
        args = (items, users, t, t, own) if self.base is None else (items, users, self._rel(t), self._rel(t + horizon_ms), own)
        self._last = (rel, horizon_ms, args)
        return args

    def co_clicked(self, examples: Sequence[LabelledExample], horizon_ms: int, top_k: int,
                   max_users: int) -> tuple[np.ndarray, np.ndarray]:
        """Per example: the item codes most co-clicked with its item in ``(t, t + H]``
        (``(n, top_k)``, ``-1`` padded) and how many users clicked its item there."""
        items, _, t_rel, end_rel, own = self._args(examples, horizon_ms)
        top = np.full((len(examples), top_k), -1, dtype=np.int64)
        n_users = np.zeros(len(examples), dtype=np.int64)
        if self.base is not None:
            i, u = self.by_item, self.by_user
            n_i, n_u = len(self.items.names), len(self.users.names)
            kernels.co_click(i.comp, i.other, i.serial, i.starts(n_i), u.comp, u.other, u.serial, u.starts(n_u),
                             items, t_rel, end_rel, own, n_i, n_u, max_users, top, n_users)
        return top, n_users

    def next_clicked(self, examples: Sequence[LabelledExample], horizon_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """Per example: the item code of its user's next click in ``(t, t + H]`` other than its
        own (``-1``: none), and its own item's code."""
        items, users, t_rel, end_rel, own = self._args(examples, horizon_ms)
        out = np.full(len(examples), -1, dtype=np.int64)
        if self.base is not None:
            u = self.by_user
            kernels.next_click(u.comp, u.other, u.serial, u.starts(len(self.users.names)), users, t_rel, end_rel, own,
                               out)
        return out, items

    def item_tokens(self, prefix: str) -> tuple[np.ndarray, np.ndarray]:
        """``prefix + item id`` for every item code: its column hash (unmasked CRC-32, as
        ``features.hash_tokens``) and the token itself (object array)."""
        names = self.items.names
        have = self._tokens.get(prefix) or (_EMPTY, np.zeros(0, dtype=object))
        n = len(have[0])
        if n < len(names):
            new = [prefix + name for name in names[n:]]
            h = np.fromiter((crc32(s.encode()) for s in new), dtype=np.int64, count=len(new))
            s = np.empty(len(new), dtype=object)
            s[:] = new
            have = self._tokens[prefix] = (np.concatenate([have[0], h]), np.concatenate([have[1], s]))
        return have

    # -- one key at a time ----------------------------------------------------------------
    def _window(self, view: _Sorted, codes: _Codes, key: str, start: int, end: int) -> list[tuple[int, str, str]]:
        self._merge()
        c = codes.code.get(key)
        if c is None or self.base is None:
            return []
        s = view.window(c, int(self._rel(np.int64(start))), int(self._rel(np.int64(end))))
        other = self.users.names if view is self.by_item else self.items.names
        if self._iids is None:
            self._iids = {serial: iid for iid, serial in self._serial.items()}
        iids = self._iids
        ts = ((view.comp[s] & TIME_MASK) + self.base).tolist()
        return [(t, other[o], iids[k]) for t, o, k in zip(ts, view.other[s].tolist(), view.serial[s].tolist())]

    def item_clicks(self, item_id: str, start: int, end: int) -> list[tuple[int, str, str]]:
        """``(ts, user_id, impression_id)`` of the item's clicks with ``start < ts <= end``."""
        return self._window(self.by_item, self.items, item_id, start, end)

    def user_clicks(self, user_id: str, start: int, end: int) -> list[tuple[int, str, str]]:
        """``(ts, item_id, impression_id)`` of the user's clicks with ``start < ts <= end``."""
        return self._window(self.by_user, self.users, user_id, start, end)

    # -- memory ---------------------------------------------------------------------------
    def prune(self, before: int) -> None:
        """Drop clicks with ``ts <= before``."""
        self._merge()
        if self.base is None:
            return
        cut = int(self._rel(np.int64(before)))
        for view in (self.by_item, self.by_user):
            view.keep((view.comp & TIME_MASK) > cut)
        # The ids whose latest click is dropped, from the heap: an id clicked again later has a
        # newer entry in ``clicked`` than the one taken off, and stays.
        heap, clicked, serial = self._by_time, self.clicked, self._serial
        while heap and heap[0][0] <= before:
            ts, iid = heapq.heappop(heap)
            if clicked.get(iid) == ts:
                del clicked[iid]
                serial.pop(iid, None)
        self._last = self._iids = None
        if not len(self.by_item.comp):
            self.base = None  # empty: the next clicks choose it afresh
        self._compact()

    def _compact(self, force: bool = False) -> None:
        """Renumber users and items so codes stay dense: only those with clicks keep one."""
        self._merge()
        self._last = None
        for codes, view, other in ((self.items, self.by_item, self.by_user), (self.users, self.by_user, self.by_item)):
            if not force and not worth_compacting(len(codes.names)):
                continue
            live = np.unique(view.comp >> TIME_BITS)
            if not force and not worth_compacting(len(codes.names), len(live)):
                continue
            mapping = codes.remap(live)
            view.comp = (mapping[view.comp >> TIME_BITS] << TIME_BITS) | (view.comp & TIME_MASK)
            other.other = mapping[other.other]
            if codes is self.items:
                self._tokens = {}
