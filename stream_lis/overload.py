"""Load shedding, said out loud: one log line per bound when it starts shedding, then at
most one a minute with the running count.

A bound that sheds (``limits.*``) keeps a worker alive and its memory flat, at the cost of
data; that must never be silent. Every shed item is also counted in a metric by the caller
(``stream_lis_shed_total`` or an ``invalid_events`` reason).

>>> import logging
>>> w = ShedWarnings(interval_s=60.0, clock=iter([0.0, 1.0, 61.0]).__next__)
>>> [w.note("lookahead", 5, "limits.max_held_examples=10") for _ in range(3)]
[True, False, True]
>>> w.totals["lookahead"]
15
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Callable

log = logging.getLogger("stream_lis.overload")


class ShedWarnings:
    """Rate-limited warnings about shed load, per bound."""

    def __init__(self, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.totals: Counter[str] = Counter()
        self._last: dict[str, float] = {}

    def note(self, bound: str, n: int, detail: str) -> bool:
        """Record ``n`` items shed at ``bound``; returns whether a line was logged."""
        self.totals[bound] += n
        now = self.clock()
        last = self._last.get(bound)
        if last is not None and now - last < self.interval_s:
            return False
        self._last[bound] = now
        log.warning("shedding load at %s (%s): %d dropped so far; raise the limit or add capacity",
                    bound, detail, self.totals[bound])
        return True


#: One per process: a log line per bound, whichever arm or stage sheds.
WARNINGS = ShedWarnings()
