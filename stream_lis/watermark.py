"""The event clock: a watermark that says how far event time has certainly progressed.

The watermark is the largest event time seen minus the allowed lateness. Everything that
"waits" in stream_lis (labels for the attribution window, examples for the look-ahead
horizon) waits on this clock, never on wall time, so a replay of a file gives the same
numbers as the live stream it came from.

>>> wm = Watermark(lateness_ms=100)
>>> wm.observe(1_000); wm.value
900
>>> wm.observe(950); wm.value      # out of order but within lateness: clock does not move back
900
>>> wm.is_late(899), wm.is_late(900)
(True, False)
"""

from __future__ import annotations

#: Watermark before any event: nothing is late yet.
NEG_INF = -(1 << 62)
#: Watermark after the end of a finite input: every window is closed.
POS_INF = 1 << 62


class Watermark:
    """Monotone event-time watermark; ``advance_to`` lets a runtime close windows at the end."""

    __slots__ = ("lateness_ms", "max_ts", "value")

    def __init__(self, lateness_ms: int) -> None:
        self.lateness_ms = lateness_ms
        self.max_ts = NEG_INF
        self.value = NEG_INF

    def observe(self, ts: int) -> None:
        """Account for one accepted event time."""
        if ts > self.max_ts:
            self.max_ts = ts
            if ts - self.lateness_ms > self.value:
                self.value = ts - self.lateness_ms

    def is_late(self, ts: int) -> bool:
        """An event older than the watermark arrived after its windows may have closed."""
        return ts < self.value

    def advance_to(self, ts: int) -> None:
        """Move the watermark forward (end of input, or an idle-source heartbeat)."""
        if ts > self.value:
            self.value = ts

    def state(self) -> dict[str, int]:
        return {"max_ts": self.max_ts, "value": self.value}

    def load(self, state: dict[str, int]) -> None:
        self.max_ts, self.value = int(state["max_ts"]), int(state["value"])
