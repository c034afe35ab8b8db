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


def idle_targets(max_ts: dict[int, int], idle: set[int], wall_ms: int, lateness_ms: int,
                 reach_ms: int) -> dict[int, int]:
    """How far the watermark of each idle partition may move (the Kafka join stage's rule).

    ``max_ts``: the largest event time each partition has seen (those that had input);
    ``idle``: the partitions without input for ``kafka.idle_partition_timeout`` while caught up.

    * Never past the wall clock minus the lateness: on a live stream an idle partition moves
      with real time, as if it had an event now.
    * While other partitions still have input, no further than the stream's frontier (the
      largest event time seen on any partition, minus the lateness): a quiet partition of a
      replay or backfill keeps up with the others but does not outrun them, so its next
      records are late only if they would be late on one clock.
    * Once every partition is idle (the input paused or ended), up to ``reach_ms`` past its own
      largest event time: far enough to close every window of what it has seen (``reach_ms`` is
      ``max(W, H)`` plus one), not so far that its experiments "end". A pause longer than the
      timeout in a backfill therefore closes windows early: that is what the timeout sets.

    >>> seen = {0: 10_000, 1: 50_000}
    >>> idle_targets(seen, {0}, wall_ms=10**12, lateness_ms=1_000, reach_ms=5_000)     # 1 still flows
    {0: 49000}
    >>> idle_targets(seen, {0, 1}, wall_ms=10**12, lateness_ms=1_000, reach_ms=5_000)  # the input stopped
    {0: 15000, 1: 55000}
    >>> idle_targets(seen, {0, 1}, wall_ms=52_000, lateness_ms=1_000, reach_ms=5_000)  # live: the wall clock
    {0: 15000, 1: 51000}
    """
    if not idle:
        return {}
    if set(max_ts) <= idle:
        return {p: min(wall_ms - lateness_ms, max_ts[p] + reach_ms) for p in idle}
    frontier = max(max_ts.values()) - lateness_ms
    return {p: min(wall_ms - lateness_ms, frontier) for p in idle}


def idle_ends(max_ts: dict[int, int], idle: set[int], wall_ms: int, lateness_ms: int,
              reach_ms: int) -> dict[int, int]:
    """The partitions whose input ended, with their last event time (``idle_targets``' inputs).

    Once every partition is idle, ``idle_targets`` moves a partition's watermark to the wall
    clock or to its last event plus ``reach_ms``, whichever is earlier. By the clock (a live
    stream in a lull), no window is cut: an on-time event in it would have arrived by now.
    By the reach (the clock is further than that past the data: the end of a backfill, or a
    pause in one longer than ``kafka.idle_partition_timeout``), the windows that reach past
    the last event are closed on data that stops there, as at the end of a file: the
    evaluation stage learns from those examples but keeps them out of the AUCs (``end_ms``
    of ``ArmSet.release``). The input has ended only when every partition's has: while one
    still has input, or follows the clock (a live lull), none has.

    >>> seen = {0: 10_000, 1: 50_000}
    >>> idle_ends(seen, {0, 1}, wall_ms=10**12, lateness_ms=1_000, reach_ms=5_000)  # a backfill's end
    {0: 10000, 1: 50000}
    >>> idle_ends(seen, {0, 1}, wall_ms=52_000, lateness_ms=1_000, reach_ms=5_000)  # live: 1 follows the clock
    {}
    >>> idle_ends(seen, {0}, wall_ms=10**12, lateness_ms=1_000, reach_ms=5_000)     # 1 still flows
    {}
    """
    if not max_ts or not set(max_ts) <= idle:
        return {}
    ended = {p: max_ts[p] for p in sorted(idle) if max_ts[p] + reach_ms < wall_ms - lateness_ms}
    return ended if len(ended) == len(max_ts) else {}
