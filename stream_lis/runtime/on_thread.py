"""A blocking call run on a daemon thread of its own, its outcome kept for the caller.

Kafka client calls can wait without a bound of their own (metadata during a broker outage, a
TLS handshake never answered), and some must run off a thread that has to keep going (the
consumer's IO loop, which sends the group's heartbeats). The caller starts the call here and
waits its own way: beating a pulse, in the IO loop's own sleeps, saying in the log that it
still waits, or giving up and leaving the thread behind.

>>> c = OnThread(lambda: 6 * 7, "answer")
>>> c.done.wait(5), c.result()
(True, 42)
>>> c = OnThread(lambda: 1 / 0, "fails")
>>> c.done.wait(5)
True
>>> c.result()
Traceback (most recent call last):
...
ZeroDivisionError: division by zero
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Generic, TypeVar

__all__ = ["OnThread"]

T = TypeVar("T")


class OnThread(Generic[T]):
    """``call()`` started now on a daemon thread named ``name``; ``done`` is set when it ends."""

    def __init__(self, call: Callable[[], T], name: str) -> None:
        self.done = threading.Event()
        self._outcome: tuple[bool, Any] | None = None
        threading.Thread(target=self._run, args=(call,), name=name, daemon=True).start()

    def _run(self, call: Callable[[], T]) -> None:
        try:
            self._outcome = (True, call())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread by result()
            self._outcome = (False, exc)
        finally:
            self.done.set()

    def result(self) -> T:
        """The call's value, or its exception raised here; only once ``done`` is set."""
        if self._outcome is None:
            raise RuntimeError("the call has not ended yet")
        ok, value = self._outcome
        if ok:
            return value
        raise value
