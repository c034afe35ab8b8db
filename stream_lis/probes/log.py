"""The behaviour log: recent impressions and attributed clicks, queryable by time window.

Probes that leak *future* behaviour (``next_click``, ``future_item``, ``co_click``) all ask
the same questions: what did this item / this user do in ``(t, t + H]``? One shared log
answers them from per-key lists sorted by event time (bisect), so each probe is a few lines
of feature logic and the data is held once. Entries older than every unreleased example are
pruned, which bounds memory by the horizon.

>>> log = BehaviourLog()
>>> log.add_impression("a", 10); log.add_impression("a", 20)
>>> log.add_click("u", "a", 25, "i2")
>>> log.item_impressions("a", 10, 30), [c[0] for c in log.item_clicks("a", 10, 30)]
(1, [25])
"""

from __future__ import annotations

from bisect import bisect_right, insort



def _add_ts(lst: list[int], ts: int) -> None:
    if not lst or ts >= lst[-1]:
        lst.append(ts)
    else:
        insort(lst, ts)


class BehaviourLog:
    """Per-item impression times and per-item / per-user click records."""

    def __init__(self) -> None:
        self.item_imps: dict[str, list[int]] = {}
        # (ts, user_id or item_id, impression_id)
        self.item_clk: dict[str, list[tuple[int, str, str]]] = {}
        self.user_clk: dict[str, list[tuple[int, str, str]]] = {}
        # Event times of every impression / click, for window-wide base rates.
        self.all_imps: list[int] = []
        self.all_clk: list[int] = []

    def add_impression(self, item_id: str, ts: int) -> None:
        _add_ts(self.item_imps.setdefault(item_id, []), ts)
        _add_ts(self.all_imps, ts)

    def add_click(self, user_id: str, item_id: str, ts: int, impression_id: str) -> None:
        for store, key, other in ((self.item_clk, item_id, user_id), (self.user_clk, user_id, item_id)):
            rec = (ts, other, impression_id)
            lst = store.get(key)
            if lst is None:
                store[key] = [rec]
            elif rec >= lst[-1]:
                lst.append(rec)
            else:
                insort(lst, rec)
        _add_ts(self.all_clk, ts)

    def totals(self, start: int, end: int) -> tuple[int, int]:
        """``(impressions, clicks)`` of all items with ``start < ts <= end``."""
        return (bisect_right(self.all_imps, end) - bisect_right(self.all_imps, start),
                bisect_right(self.all_clk, end) - bisect_right(self.all_clk, start))

    def item_impressions(self, item_id: str, start: int, end: int) -> int:
        """Number of impressions of the item with ``start < ts <= end``."""
        lst = self.item_imps.get(item_id)
        if not lst:
            return 0
        return bisect_right(lst, end) - bisect_right(lst, start)

    @staticmethod
    def _window(lst: list[tuple[int, str, str]] | None, start: int, end: int) -> list[tuple[int, str, str]]:
        if not lst:
            return []
        lo = bisect_right(lst, (start, "\U0010ffff"))
        hi = bisect_right(lst, (end, "\U0010ffff"))
        return lst[lo:hi]

    def item_clicks(self, item_id: str, start: int, end: int) -> list[tuple[int, str, str]]:
        """``(ts, user_id, impression_id)`` of the item's clicks with ``start < ts <= end``."""
        return self._window(self.item_clk.get(item_id), start, end)

    def user_clicks(self, user_id: str, start: int, end: int) -> list[tuple[int, str, str]]:
        """``(ts, item_id, impression_id)`` of the user's clicks with ``start < ts <= end``."""
        return self._window(self.user_clk.get(user_id), start, end)

    def prune(self, before: int) -> None:
        """Drop entries with ``ts <= before``: no unreleased example can ask for them."""
        for lst in (self.all_imps, self.all_clk):
            del lst[: bisect_right(lst, before)]
        for store in (self.item_imps, self.item_clk, self.user_clk):
            dead = []
            for key, lst in store.items():
                if not lst:
                    continue
                first = lst[0] if isinstance(lst[0], int) else lst[0][0]
                if first > before:
                    continue
                cut = bisect_right(lst, before) if isinstance(lst[0], int) else bisect_right(lst, (before, "\U0010ffff"))
                del lst[:cut]
                if not lst:
                    dead.append(key)
            for key in dead:
                del store[key]

