"""A rebalance a consumer has begun is carried to its end: kafka-python 3.0's group join,
made to read a finished join and to keep joining until one completes, as the Java client does.

A stage's consumer polls with a short timeout (200 ms). kafka-python 3.0 sends JoinGroup and
SyncGroup as a task on its IO loop and, when a poll's timeout ends first, leaves the task in
flight for the next poll to await. Two things can then leave the member half-joined (its
partitions revoked before the join and never assigned again, its heartbeats off), with no
error and no log line, while the consumer goes on polling and the stage owns nothing:

- **The next poll does not look.** A rebalance the group leader starts because a subscribed
  topic gained partitions is wanted only while the leader's assignment snapshot differs from
  the metadata. Performing the assignment (inside the task) brings them level, so the next
  poll sees nothing to do and the task ends unread.
- **A finished task is thrown away.** A poll that finds the task already done sends a new
  JoinGroup instead of reading the done one's assignment; from the leader, or after a
  metadata change, that starts another rebalance. A caller whose polls are shorter than a
  join's round trip can go without an assignment indefinitely.

``install`` patches kafka-python's coordinator:

- ``need_rejoin`` also holds while a join task is in flight or unread, or a join has been
  prepared (the listeners told of the revocation) and has not completed: the Java client's
  ``rejoinNeededOrPending``.
- A finished join task is read, its assignment or its error, once. Not read: one that timed
  out itself (kafka-python takes that error for the poll's own timeout and would keep the
  task), and one finished before the member fell out of the group (its generation reset, as
  ``unsubscribe`` or an expired session do); a new join replaces those, as before.

An assignment read late may be stale already. The next heartbeat, one
``heartbeat_interval`` later, then answers REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION or
UNKNOWN_MEMBER_ID and the member rejoins, as for any stale generation: until then it works on
partitions it may no longer own, as a member past its session timeout does.

``install`` acts only on the release series it was written and tested against (``TESTED``)
and where the library's join still reads as expected; other releases are left as they are.

>>> was = installed()
>>> install() or unavailable() is not None
True
>>> _ = uninstall() if not was else None
"""

from __future__ import annotations

import inspect
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
    try:  # the two tests this patch answers: a done join task replaced, a timeout keeping it
        source = inspect.getsource(_library.get("join_group_async", BaseCoordinator.join_group_async))
    except (OSError, TypeError):
        return "kafka-python's group join cannot be read"
    if "self._join_task.is_done" not in source or "except Errors.KafkaTimeoutError" not in source:
        return "kafka-python's group join does not read as expected"
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
    """``ConsumerCoordinator.need_rejoin``, or a join in flight or unread, or one prepared
    and not completed (the Java client's ``rejoinNeededOrPending``)."""
    if _library["need_rejoin"](self):
        return True
    return bool(self._subscription.partitions_auto_assigned()
                and (getattr(self, "_join_task", None) is not None or getattr(self, "rejoining", False)))


async def _join_group_async(self: Any, timeout_ms: Any = None) -> Any:
    """``BaseCoordinator.join_group_async``, reading a join task that finished since the last
    poll instead of starting another (``install`` says which are not read)."""
    from kafka.errors import KafkaTimeoutError

    task = getattr(self, "_join_task", None)
    finished = None
    if task is not None and not isinstance(task, _Finished) and task.is_done:
        stale = task.succeeded() and self._generation.generation_id < 0
        if stale or isinstance(task.exception, KafkaTimeoutError):
            self._join_task = None  # the library then starts a new join, as it did
        else:
            finished = self._join_task = _Finished(task)
    elif isinstance(task, _Finished):
        finished = task
    try:
        return await _library["join_group_async"](self, timeout_ms)
    except BaseException as exc:
        # A join's own error the library lets through (an assignor's) reached the caller: the
        # task is read, and the next poll joins anew (the library kept the task, as done).
        task = getattr(self, "_join_task", None)
        if task is not None and not isinstance(task, _Finished) and task.is_done and task.exception is exc:
            self._join_task = None
        raise
    finally:
        # A finished task is read once; unread (no coordinator yet), it waits for the next poll.
        if finished is not None and finished.read and self._join_task is finished:
            self._join_task = None


class _Finished:
    """A finished join task, shown to kafka-python as one still to await. The library starts
    a new join for a task that ``is_done``; awaiting this one (``wait_for`` registers its
    callbacks, which run at once) hands over the finished task's assignment or error, after
    which the library drops it (``_join_group_async`` does, for an error the library lets
    through)."""

    is_done = False

    def __init__(self, task: Any) -> None:
        self.task, self.read = task, False

    def add_callback(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> _Finished:
        self.read = True
        self.task.add_callback(f, *args, **kwargs)
        return self

    def add_errback(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> _Finished:
        self.read = True
        self.task.add_errback(f, *args, **kwargs)
        return self

    def __await__(self) -> Any:
        self.read = True
        return self.task.__await__()
