"""A rebalance a consumer has begun is carried to its end: kafka-python 3.0's group join,
made to finish as the Java client's does.

A stage's consumer polls with a short timeout (200 ms). kafka-python 3.0 sends JoinGroup and
SyncGroup as a task on its IO loop and, when a poll's timeout ends first, leaves the task in
flight for the next poll to await. Two things can then leave the member half-joined, with no
error and no log line:

- **The next poll does not look.** A rebalance the group leader starts because a subscribed
  topic gained partitions is wanted only while the leader's assignment snapshot differs from
  the metadata. Performing the assignment (inside the task) brings them level, so the next
  poll sees nothing to do. The task ends unawaited: the partitions were revoked before the
  join and are never assigned again, and the stage owns nothing while the consumer goes on
  polling.
- **A finished task is thrown away.** A poll that finds the task already done sends a new
  JoinGroup instead of reading the done one's assignment, which starts another rebalance. A
  caller whose polls are always shorter than a join's round trip never gets an assignment.

The Java consumer keeps rejoining while a join is "needed or pending" and reads a finished
join before it starts another one. ``install`` does both to kafka-python's coordinator:
``need_rejoin`` also holds while a join task is in flight or unread, or the partitions were
revoked and not yet assigned; a finished join task is read. An assignment read late may
already be stale; the next heartbeat then says the group is rebalancing and the member
rejoins, as it would for any stale generation.

``install`` patches kafka-python's classes for the whole process, only on the release series
it was written and tested against (``TESTED``), and leaves other releases as they are.

>>> was = installed()
>>> install() or unavailable() is not None
True
>>> _ = uninstall() if not was else None
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

log = logging.getLogger("stream_lis.kafka.rejoin")

#: kafka-python release series whose coordinator this module was written against.
TESTED = ("3.0.",)

_library: dict[str, Callable[..., Any]] = {}
_installed = False
_lock = threading.Lock()


def unavailable() -> str | None:
    """Why ``install`` would do nothing (``None``: it can install)."""
    try:
        import kafka
        from kafka.coordinator.base import BaseCoordinator
        from kafka.coordinator.consumer import ConsumerCoordinator
    except ImportError as exc:
        return f"not importable: {exc}"
    if not kafka.__version__.startswith(TESTED):
        return f"kafka-python {kafka.__version__} is not a release this was tested with ({', '.join(TESTED)}x)"
    if not (hasattr(BaseCoordinator, "join_group_async") and "need_rejoin" in vars(ConsumerCoordinator)):
        return "kafka-python's group coordinator is not laid out as expected"
    return None


def install() -> bool:
    """Patch kafka-python's group coordinator (every consumer of the process); False, and
    nothing changed, when ``unavailable()`` says why not."""
    global _installed
    why = unavailable()
    if why is not None:
        log.info("kafka-python's group join left as it is: %s", why)
        return False
    from kafka.coordinator.base import BaseCoordinator
    from kafka.coordinator.consumer import ConsumerCoordinator

    with _lock:
        if not _installed:
            _library["need_rejoin"] = ConsumerCoordinator.need_rejoin
            _library["join_group_async"] = BaseCoordinator.join_group_async
            ConsumerCoordinator.need_rejoin = _need_rejoin  # type: ignore[method-assign]
            BaseCoordinator.join_group_async = _join_group_async  # type: ignore[method-assign]
            _installed = True
    return True


def uninstall() -> None:
    """kafka-python's own group join again."""
    global _installed
    with _lock:
        if _installed:
            from kafka.coordinator.base import BaseCoordinator
            from kafka.coordinator.consumer import ConsumerCoordinator

            ConsumerCoordinator.need_rejoin = _library["need_rejoin"]  # type: ignore[method-assign]
            BaseCoordinator.join_group_async = _library["join_group_async"]  # type: ignore[method-assign]
            _installed = False


def installed() -> bool:
    return _installed


def _need_rejoin(self: Any) -> bool:
    """``ConsumerCoordinator.need_rejoin``, or a join in flight or unread, or partitions
    revoked for a join that has not ended (the Java client's ``rejoinNeededOrPending``)."""
    if _library["need_rejoin"](self):
        return True
    return bool(self._subscription.partitions_auto_assigned()
                and (getattr(self, "_join_task", None) is not None or getattr(self, "rejoining", False)))


async def _join_group_async(self: Any, timeout_ms: Any = None) -> Any:
    """``BaseCoordinator.join_group_async``, reading a join task that finished since the last
    poll instead of starting another."""
    task = getattr(self, "_join_task", None)
    if task is not None and not isinstance(task, _Finished) and task.is_done:
        self._join_task = _Finished(task)
    return await _library["join_group_async"](self, timeout_ms)


class _Finished:
    """A finished join task, shown to kafka-python as one still to await. The library starts
    a new join for a task that ``is_done``; awaiting this one (``wait_for`` registers its
    callbacks, which run at once) hands over the finished task's assignment or error, after
    which the library drops it."""

    is_done = False

    def __init__(self, task: Any) -> None:
        self.task = task

    def add_callback(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> _Finished:
        self.task.add_callback(f, *args, **kwargs)
        return self

    def add_errback(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> _Finished:
        self.task.add_errback(f, *args, **kwargs)
        return self

    def __await__(self) -> Any:
        return self.task.__await__()
