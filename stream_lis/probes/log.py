"""The behaviour log: recent impressions and attributed clicks, queryable by time window.

Probes that leak *future* behaviour (``next_click``, ``future_item``, ``co_click``) all ask
the same questions: what did this item / this user do in ``(t, t + H]``? One shared log
answers them, so each probe is a few lines of feature logic and the data is held once:

* counts (impressions and clicks per item, and of all items) come from ``WindowIndex``
  arrays, a whole release of examples at once (``counts``);
* the clicks themselves, by item and by user (``ClickLog``: sorted columns), for the probes
  that look at *which* items and users.

Entries older than every unreleased example are pruned, which bounds memory by the horizon.

>>> log = BehaviourLog()
>>> log.add_impression("a", 10); log.add_impression("a", 20)
>>> log.add_click("u", "a", 25, "i2")
>>> log.item_impressions("a", 10, 30), [c[0] for c in log.item_clicks("a", 10, 30)]
(1, [25])
>>> log.totals(0, 30)
(2, 1)
"""

from __future__ import annotations

from itertools import repeat
from typing import Sequence

import numpy as np

from .click_log import ClickLog
from .window_index import MAX_KEY, WindowIndex, worth_compacting

Click = tuple[int, str, str]

#: Key of the all-items indexes; item codes start at 1; unknown items ask for a key no
#: item is ever given.
_ALL = 0
_NONE = MAX_KEY


class BehaviourLog:
    """Per-item impression and click counts (indexed) and per-item / per-user click records."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self._names: list[str] = [""]
        self.imps = WindowIndex()  # (item code, ts); key 0: every impression
        self.clks = WindowIndex()  # (item code, ts); key 0: every click
        #: the attributed clicks, by item and by user
        self.clicks = ClickLog()

    @property
    def clicked(self) -> dict[str, int]:
        """Impression id -> event time of its logged click (to leave an example's own click out)."""
        return self.clicks.clicked

    def _code(self, item_id: str) -> int:
        c = self._codes.get(item_id)
        if c is None:
            if len(self._names) >= MAX_KEY:
                self._compact(force=True)
            c = self._codes[item_id] = len(self._names)
            self._names.append(item_id)
        return c

    def codes(self, item_ids: Sequence[str]) -> np.ndarray:
        """Item codes for index queries (a code without events when the item is unknown)."""
        return np.fromiter(map(self._codes.get, item_ids, repeat(_NONE)), dtype=np.int64, count=len(item_ids))

    def add_impression(self, item_id: str, ts: int) -> None:
        c = self._codes.get(item_id)
        self.imps.add(c if c is not None else self._code(item_id), ts)
        self.imps.add(_ALL, ts)

    def __setstate__(self, state: dict) -> None:
        if "item_clk" in state:  # a checkpoint from before the click columns: rebuild them
            clicks = ClickLog()
            rows = sorted((ts, user, item, iid) for item, lst in state.pop("item_clk").items() for ts, user, iid in lst)
            for ts, user, item, iid in rows:
                clicks.add(user, item, ts, iid)
            clicks.clicked = dict(state.pop("clicked", clicks.clicked))
            clicks.reindex()
            for stale in ("user_clk", "item_ts", "user_ts"):
                state.pop(stale, None)
            state["clicks"] = clicks
        self.__dict__.update(state)

    def add_click(self, user_id: str, item_id: str, ts: int, impression_id: str) -> None:
        self.clicks.add(user_id, item_id, ts, impression_id)
        self.clks.add(self._code(item_id), ts)
        self.clks.add(_ALL, ts)

    # -- a release at once ----------------------------------------------------------------
    def counts(self, item_ids: Sequence[str], start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per example: impressions and clicks of its item, and of all items, in ``(start, end]``."""
        codes = self.codes(item_ids)
        every = np.zeros(len(codes), dtype=np.int64)
        return (self.imps.count(codes, start, end), self.clks.count(codes, start, end),
                self.imps.count(every, start, end), self.clks.count(every, start, end))

    # -- one example at a time -----------------------------------------------------------
    def totals(self, start: int, end: int) -> tuple[int, int]:
        """``(impressions, clicks)`` of all items with ``start < ts <= end``."""
        s, e, k = np.array([start]), np.array([end]), np.array([_ALL])
        return int(self.imps.count(k, s, e)[0]), int(self.clks.count(k, s, e)[0])

    def item_impressions(self, item_id: str, start: int, end: int) -> int:
        """Number of impressions of the item with ``start < ts <= end``."""
        code = self._codes.get(item_id)
        if code is None:
            return 0
        return int(self.imps.count(np.array([code]), np.array([start]), np.array([end]))[0])

    def item_clicks(self, item_id: str, start: int, end: int) -> list[Click]:
        """``(ts, user_id, impression_id)`` of the item's clicks with ``start < ts <= end``."""
        return self.clicks.item_clicks(item_id, start, end)

    def user_clicks(self, user_id: str, start: int, end: int) -> list[Click]:
        """``(ts, item_id, impression_id)`` of the user's clicks with ``start < ts <= end``."""
        return self.clicks.user_clicks(user_id, start, end)

    @property
    def size(self) -> int:
        """Impressions and clicks held."""
        return (len(self.imps) + len(self.clks)) // 2  # each is indexed twice (item, all)

    def shed_oldest(self, keep: int) -> int:
        """Prune the oldest events until at most ``keep`` are left; returns how many went."""
        before = self.size
        if before <= keep:
            return 0
        ts = np.sort(np.concatenate([self.imps.times(_ALL), self.clks.times(_ALL)]))
        self.prune(int(ts[before - keep - 1]))
        return before - self.size

    def prune(self, before: int) -> None:
        """Drop entries with ``ts <= before``: no unreleased example can ask for them."""
        self.imps.prune(before)
        self.clks.prune(before)
        self.clicks.prune(before)
        self._compact()

    def _compact(self, force: bool = False) -> None:
        """Renumber items so codes stay dense: only items with events keep one."""
        if not force and not worth_compacting(len(self._names)):
            return
        live = np.union1d(self.imps.keys_in_use(), self.clks.keys_in_use())
        live = live[live != _ALL]
        if not force and not worth_compacting(len(self._names), len(live)):
            return
        mapping = np.zeros(len(self._names), dtype=np.int64)
        mapping[live] = np.arange(1, len(live) + 1)
        self.imps.remap(mapping)
        self.clks.remap(mapping)
        self._names = [""] + [self._names[c] for c in live.tolist()]
        self._codes = {name: k for k, name in enumerate(self._names) if k}
