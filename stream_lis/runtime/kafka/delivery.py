"""Whether what a stage sent reached the broker: never checkpoint past lost output.

A stage's checkpoint claims its input up to some offsets; the labels and dead letters that
input produced must be on the broker by then, or a restart resumes past them and they are
gone. ``producer.flush()`` waits for every send but does not say whether one failed: the
client retries a failed batch until ``delivery_timeout_ms`` (a broker away longer, a
message over the topic's ``max.message.bytes``, a missing permission or topic) and then
drops it with a log line. ``Delivery`` watches the sends; the stage asks ``check()`` before
each checkpoint and each round, and stops on the first loss: the worker exits, and its
restart resumes from the last checkpoint, which predates the lost output (the evaluation
stage drops what it receives twice).

>>> from kafka.future import Future
>>> d, ok, lost = Delivery(), Future(), Future()
>>> d.watch(ok, "labelled"); d.watch(lost, "labelled")
>>> _ = ok.success(None); d.check()
>>> _ = lost.failure(ValueError("MessageSizeTooLargeError"))
>>> d.check()
Traceback (most recent call last):
stream_lis.runtime.kafka.delivery.DeliveryFailed: a send to topic labelled failed for good (MessageSizeTooLargeError); stopping before a checkpoint claims the input it came from: a restart resumes from the last checkpoint and sends it again
"""

from __future__ import annotations

import time
from typing import Any

from kafka.errors import KafkaTimeoutError


#: How long past the producer's ``delivery_timeout_ms`` a flush may still wait.
FLUSH_GRACE_S = 30.0


class DeliveryFailed(RuntimeError):
    """Output the broker never took: the stage stops rather than checkpoint past it."""


class Delivery:
    """The first send that failed for good, of the sends it watches (thread-safe enough:
    the producer's IO thread only sets, once; stages only read)."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.topic: str | None = None
        self._waiting_since: float | None = None  # first try_flush that timed out, since the last that did not

    def watch(self, future: Any, topic: str) -> None:
        """Note ``future``'s failure (a ``kafka.future.Future`` from ``producer.send``)."""
        future.add_errback(self._failed, topic)

    def _failed(self, topic: str, exc: BaseException) -> None:
        if self.error is None:
            self.error, self.topic = exc, topic

    def check(self) -> None:
        """Raise ``DeliveryFailed`` once a watched send failed."""
        if self.error is not None:
            raise DeliveryFailed(f"a send to topic {self.topic} failed for good ({self.error}); stopping before a "
                                 "checkpoint claims the input it came from: a restart resumes from the last "
                                 "checkpoint and sends it again")

    def try_flush(self, producer: Any, timeout_s: float) -> bool:
        """Whether everything sent is on the broker, waiting at most ``timeout_s``: the stage
        checkpoints when it is, and otherwise goes on and tries again next interval (a
        stalled broker holds up its checkpoints, not its loop, its stop or /metrics). Sends
        that never finish, past ``flush_limit_s``, are ``DeliveryFailed``."""
        try:
            self._flush(producer, timeout_s)
        except KafkaTimeoutError as exc:
            if self._waiting_since is None:
                self._waiting_since = time.monotonic()
            elif time.monotonic() - self._waiting_since > flush_limit_s(producer):
                raise _never_ends(f"for {flush_limit_s(producer):g} s", exc) from exc
            return False
        self._waiting_since = None
        return True

    def flush(self, producer: Any, wait_s: float = 5.0) -> None:
        """``producer.flush()``, then ``check()``; a flush still waiting ``flush_limit_s``
        later never ends (the client was seen stuck in flush for good after a broker
        stalled): ``DeliveryFailed``, and the worker's restart resumes from its last
        checkpoint."""
        try:
            self._flush(producer, flush_limit_s(producer), wait_s)
        except KafkaTimeoutError as exc:
            raise _never_ends(f"after {flush_limit_s(producer):g} s", exc) from exc

    def _flush(self, producer: Any, timeout_s: float, wait_s: float = 5.0) -> None:
        """``producer.flush(timeout_s)`` and ``check()``; ``KafkaTimeoutError`` when it did
        not finish in time (and no watched send failed).

        kafka-python's flush can itself raise while a send fails for good under it
        (``UnknownError('Future not done')``: it found a batch the sender was aborting); the
        failure reaches the watched future a moment later. Then what is said is that failure,
        once it arrives (up to ``wait_s``), not the client's nameless error.
        """
        try:
            producer.flush(timeout=timeout_s)
        except KafkaTimeoutError:
            self.check()
            raise
        except Exception:
            deadline = time.monotonic() + wait_s
            while self.error is None and time.monotonic() < deadline:
                time.sleep(0.05)
            self.check()
            raise
        self.check()


def flush_limit_s(producer: Any) -> float:
    """How long a flush may wait: a send fails for good after the producer's
    ``delivery_timeout_ms``, so one still waiting ``FLUSH_GRACE_S`` later never ends."""
    config = getattr(producer, "config", None) or {}
    return config.get("delivery_timeout_ms", 120_000) / 1000 + FLUSH_GRACE_S


def _never_ends(waited: str, exc: BaseException) -> DeliveryFailed:
    return DeliveryFailed(f"the producer has not finished sending {waited}, past its delivery_timeout_ms: "
                          f"stopping; a restart resumes from the last checkpoint ({exc})")
