"""Rebalance listeners that leave the consumer's heartbeats running while a stage restores or
saves its partitions.

kafka-python (3.x) calls a listener on the consumer's IO thread, the thread that also sends
the group heartbeats. A stage's listener loads checkpoints (assignment) or saves them
(revocation): at the memory bounds that takes seconds per partition, and a worker taking a
few partitions over passes the session timeout. The broker then drops the member and
rebalances; the member rejoins, loads its partitions again, as slowly, and the group never
settles. ``OffLoopListener`` runs the stage's own listener on a thread of its own while the
IO loop awaits it in short sleeps, sending heartbeats meanwhile.

What the stage sees does not change: the consumer's ``poll`` (on the stage's thread) returns
only once the listener is done, so no record of a partition is handed out before its state
is restored, and revocation still saves before the partitions go. The listener takes the
stage's lock as before; the stage's thread does not hold it while it polls.

>>> class Stage:
...     def on_partitions_assigned(self, assigned):
...         print(sorted(assigned), "on", threading.current_thread().name)
>>> listener = OffLoopListener(Stage(), "join")
>>> _drive(listener.on_partitions_assigned({2, 1}))  # stands in for the consumer's IO loop
[1, 2] on join-partitions-assigned
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Coroutine

from ..on_thread import OnThread

try:  # kafka-python 3: listeners may be coroutines, awaited on the IO loop
    from kafka import AsyncConsumerRebalanceListener
    from kafka.net.selector import KernelEvent
except ImportError:  # kafka-python 2 calls listeners on the polling thread and heartbeats from a
    # thread of its own: listener_for hands the consumer the stage itself.
    AsyncConsumerRebalanceListener = None  # type: ignore[assignment,misc]

#: How often the IO loop looks whether the stage's listener is done (seconds).
POLL_S = 0.05
#: Listener work longer than this is logged (kafka-python warns from 1 s on, in words meant
#: for listeners that block its loop; that warning is dropped for ours, see ``_NotBlocking``).
SLOW_S = 1.0

log = logging.getLogger("stream_lis.rebalance")


def listener_for(stage: Any, name: str) -> Any:
    """What to hand ``KafkaConsumer.subscribe`` for a stage: the stage itself where the client
    calls listeners off its IO loop anyway (kafka-python 2), otherwise an ``OffLoopListener``."""
    if AsyncConsumerRebalanceListener is None:
        return stage
    _quiet_blocking_warning()
    return OffLoopListener(stage, name)


class _NotBlocking(logging.Filter):
    """Drops kafka-python's "Sync listeners block the consumer event loop (including
    heartbeats)" warning about an ``OffLoopListener``: it timed the awaiting, during which the
    loop went on; this module's own line says how long the stage took."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (str(record.msg).startswith("Rebalance listener") and record.args
                    and record.args[0] == "OffLoopListener")


def _quiet_blocking_warning() -> None:
    logger = logging.getLogger("kafka.coordinator.consumer")
    if not any(isinstance(f, _NotBlocking) for f in logger.filters):
        logger.addFilter(_NotBlocking())


class OffLoopListener(AsyncConsumerRebalanceListener or object):  # type: ignore[misc]
    """A stage's (blocking) rebalance listener, run on a thread while the IO loop awaits it."""

    def __init__(self, stage: Any, name: str) -> None:
        self.stage, self.name = stage, name

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._off_loop(self.stage.on_partitions_revoked, revoked, "revoked")

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._off_loop(self.stage.on_partitions_assigned, assigned, "assigned")

    async def on_partitions_lost(self, lost: Any) -> None:
        # The stage's own choice (kafka-python's base listener: treat them as revoked).
        await self._off_loop(self.stage.on_partitions_lost, lost, "lost")

    async def _off_loop(self, method: Callable[[Any], Any], arg: Any, what: str) -> None:
        start = time.monotonic()
        work = OnThread(lambda: method(arg), f"{self.name}-partitions-{what}")
        while not work.done.is_set():
            await KernelEvent("_sleep", POLL_S)  # the loop's own sleep: it runs other tasks meanwhile
        took = time.monotonic() - start
        if took > SLOW_S:
            log.info("%s stage: partitions %s took %.1f s on a thread of their own; the consumer's heartbeats "
                     "went on meanwhile", self.name, what, took)
        work.result()  # its error, if any, raised in the IO loop, which logs it


def coordinator_unknown(consumer: Any) -> bool:
    """Whether the consumer's group has no known coordinator now (the broker away, or not found
    yet), read as kafka-python's ``coordinator_unknown`` decides it but without its side
    effect (marking the coordinator dead is its IO thread's to do). False where the client has
    no such state (a stage's ``Membership`` then counts an outage as join time)."""
    try:
        coordinator = consumer._coordinator
        node = coordinator.coordinator_id
        if node is None:
            return True
        client = coordinator._client
        return bool(client.is_disconnected(node) and client.connection_delay(node) > 0)
    except Exception:  # noqa: BLE001 - a question about the client, never a reason to stop the stage
        return False


def _drive(coro: Coroutine) -> Any:
    """Run a listener coroutine to its end outside a consumer, sleeping where the IO loop would
    (examples and tests)."""
    try:
        while True:
            time.sleep(coro.send(None).args[0])
    except StopIteration as stop:
        return stop.value
