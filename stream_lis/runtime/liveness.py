"""Liveness: whether each of a worker's loops is still going round.

A process whose stage is wedged (a client call that never returns, a lock never released)
stays up and answers HTTP from another thread, so a liveness probe that only asks "is the
process there" never restarts it, and its partitions stay owned and unprocessed. Each loop
beats a ``Pulse`` every time it goes round, and while it restores state or waits on purpose
(for a side table, for the broker's metadata); ``/healthz`` fails once a running loop has
not beaten for the configured stall timeout, and the orchestrator restarts the process,
which resumes from its last checkpoint.

A loop that is stopping is left out: its final checkpoint has bounds of its own.

>>> now = [0.0]
>>> join, table = Pulse(lambda: now[0]), Pulse(lambda: now[0])
>>> now[0] = 50.0; table.beat(); now[0] = 70.0
>>> stalled([("join", join), ("table embeddings", table)], limit_s=60)
[('join', 70.0)]
>>> describe(stalled([("join", join)], limit_s=60), 60)
'stalled: the join loop has not gone round for 70 s (kafka.stall_timeout: 60 s); a restart resumes from the last checkpoint'
>>> stalled([("join", join)], limit_s=0)  # 0: the check is off
[]
>>> below_own_bounds(60, 150) is not None, below_own_bounds(180, 150), below_own_bounds(0, 150)
(True, None, None)

A loop can go round and still do nothing: a stage whose consumer gave its partitions up for a
rebalance and never got an assignment back polls on, owning nothing. ``Membership`` says how
long a stage has been without one; past the rebalance timeout (the longest the broker holds a
join open) plus the stall timeout, ``/healthz`` fails for it too:

>>> now[0] = 0.0
>>> m = Membership(lambda: now[0])  # not in a group yet (a stage waiting for its side tables)
>>> now[0] = 900.0; m.unassigned_for()
0.0
>>> m.subscribed(); now[0] = 910.0; m.unassigned_for()  # joining from its subscription on
10.0
>>> m.assigned(); m.unassigned_for()
0.0
>>> now[0] = 70.0; m.revoked(); now[0] = 600.0
>>> unassigned([("join stage", m)], rebalance_s=300, stall_s=180)
[('join stage', 530.0)]
>>> print(describe_unassigned(unassigned([("join stage", m)], 300, 180), 300, 180))  # doctest: +NORMALIZE_WHITESPACE
no partitions: the join stage has had no assignment for 530 s in a group join
(a group join takes at most kafka.rebalance_timeout, 300 s, plus kafka.stall_timeout, 180 s);
a restart joins the group anew
>>> unassigned([("join stage", m)], rebalance_s=300, stall_s=0)  # the stall check off: this one too
[]
>>> m.paused(); now[0] = 650.0; m.unassigned_for()  # the broker was away until 600: no join could go on
50.0
"""

from __future__ import annotations

import time
from typing import Callable, Iterable


class Pulse:
    """When a loop last went round (a monotonic clock: wall-clock jumps are not stalls).

    One attribute, written by the loop's thread (and by its rebalance listener's, which
    works while the loop waits in a poll) and read by the HTTP thread: a float store is
    atomic in CPython, so none takes a lock (a wedged loop may hold its stage's).
    """

    __slots__ = ("clock", "last")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last = clock()

    def beat(self) -> None:
        self.last = self.clock()

    def age(self) -> float:
        """Seconds since the last beat (since creation before the first)."""
        return self.clock() - self.last


def stalled(pulses: Iterable[tuple[str, Pulse]], limit_s: float) -> list[tuple[str, float]]:
    """``(name, seconds)`` of every loop that has not beaten for more than ``limit_s``;
    none when ``limit_s`` is 0 (the check is off)."""
    if limit_s <= 0:
        return []
    return [(name, age) for name, age in ((n, p.age()) for n, p in pulses) if age > limit_s]


def describe(stuck: list[tuple[str, float]], limit_s: float) -> str:
    """The ``/healthz`` body (and log line) for ``stalled``'s answer."""
    if not stuck:
        return "ok"
    loops = ", ".join(f"the {name} loop has not gone round for {age:.0f} s" for name, age in stuck)
    return f"stalled: {loops} (kafka.stall_timeout: {limit_s:g} s); a restart resumes from the last checkpoint"


class Membership:
    """Whether a stage's consumer holds an assignment, and since when it has not.

    Told by the stage: ``subscribed`` when it subscribes (not before: the evaluation stage
    first waits for its side tables, which is no group join); by its rebalance listener
    ``revoked`` once it has given its partitions up (before it joins again; saving their
    checkpoints is not counted, it has bounds and a pulse of its own) and ``assigned`` as soon
    as an assignment arrives, an empty one too (a group with more members than partitions).
    Between the two the member is in a group join, which the broker holds open for at most the
    rebalance timeout. This needs an eager assignor, which both stages use: every rebalance
    revokes everything and assigns anew (a cooperative one calls neither for a member that
    keeps what it has). ``paused``: the stage's loop found the broker not answering (its lag
    meter's last measurement failed: an eager revocation keeps the old assignment until the
    new one, so the meter goes on asking) or the group's coordinator unknown: no join can go
    on, so the time counts from when the broker is back. A stage holding no partition at all
    has only the coordinator's state to go by, which a hung broker whose connections are
    accepted does not change. Written on the stage's and the listener's threads and read by
    the HTTP thread: one attribute, no lock (as ``Pulse``).
    """

    __slots__ = ("clock", "since")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        #: When it last gave its partitions up (or subscribed); None: it holds an assignment or
        #: has not subscribed yet.
        self.since: float | None = None

    def subscribed(self) -> None:
        """The stage subscribed: it is joining the group from now."""
        self.since = self.clock()

    def paused(self) -> None:
        """No join can go on now (the broker does not answer): count from now."""
        if self.since is not None:
            self.since = self.clock()

    def assigned(self) -> None:
        self.since = None

    def revoked(self) -> None:
        if self.since is None:
            self.since = self.clock()

    def unassigned_for(self) -> float:
        """Seconds without an assignment (0.0 while it holds one)."""
        since = self.since
        return 0.0 if since is None else self.clock() - since


def unassigned(members: Iterable[tuple[str, Membership]], rebalance_s: float, stall_s: float) -> list[tuple[str, float]]:
    """``(name, seconds)`` of every stage without an assignment for longer than a group join
    may take (``rebalance_s``, the consumer's rebalance timeout) plus ``stall_s``; none when
    the stall check is off (``stall_s`` 0)."""
    if stall_s <= 0:
        return []
    limit = rebalance_s + stall_s
    return [(name, age) for name, age in ((n, m.unassigned_for()) for n, m in members) if age > limit]


def describe_unassigned(stuck: list[tuple[str, float]], rebalance_s: float, stall_s: float) -> str:
    """The ``/healthz`` body (and log line) for ``unassigned``'s answer."""
    stages = ", ".join(f"the {name} has had no assignment for {age:.0f} s in a group join" for name, age in stuck)
    return (f"no partitions: {stages} (a group join takes at most kafka.rebalance_timeout, {rebalance_s:g} s, "
            f"plus kafka.stall_timeout, {stall_s:g} s); a restart joins the group anew")


def below_own_bounds(limit_s: float, longest_wait_s: float) -> str | None:
    """A warning when the stall timeout is shorter than the longest single wait the worker
    bounds itself (a flush: the producer's delivery timeout plus a grace): such a wait, on a
    slow broker, would fail ``/healthz`` and have the worker restarted before its own bound
    ended it with an error saying why. Accepted (tests and impatient setups use short
    timeouts), said once at start."""
    if not 0 < limit_s < longest_wait_s:
        return None
    return (f"kafka.stall_timeout ({limit_s:g} s) is below the longest wait the worker bounds itself "
            f"({longest_wait_s:g} s: a flush, the producer's delivery_timeout_ms plus a grace): a flush waiting "
            f"on a slow broker fails /healthz, and the worker is restarted before it says why; keep it above "
            f"{longest_wait_s:g} s")
