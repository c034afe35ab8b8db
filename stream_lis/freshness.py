"""The freshness deadline: a partial chunk is evaluated once it has waited long enough.

Chunks are cut by count (``learner.batch_size``) so that a replay gives the same figures
whatever its batching. On live traffic that alone could leave an arm's released examples
waiting for their chunk to fill for as long as its traffic takes; a quiet arm beside a busy
one might wait for minutes. ``ChunkDeadline`` evaluates an arm's partial chunk once it has
waited ``delay_s`` of wall time, so a labelled example reaches ``/metrics`` within about that
long of its horizon closing. The live runtimes (the worker's evaluation stage, the embedded
runtime on stdin) apply it; replays of files do not, and stay deterministic.

>>> from stream_lis.config import Config
>>> from stream_lis.arms import ArmSet
>>> d = ChunkDeadline(delay_s=0.5)
>>> d.flush_overdue(ArmSet(Config()), now=0.0)
0
"""

from __future__ import annotations

from .arms import ArmKey, ArmSet


class ChunkDeadline:
    """Per arm: since when (wall clock, as the caller measures it) its partial chunk waits."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self._waiting: dict[ArmKey, tuple[float, int]] = {}

    def clear(self) -> None:
        self._waiting.clear()

    def flush_overdue(self, arms: ArmSet, now: float) -> int:
        """Evaluate the partial chunks that waited ``delay_s``; returns how many."""
        flushed = 0
        for key, a in arms.arms.items():
            if not a.evaluator.buffered:
                self._waiting.pop(key, None)
                continue
            chunks = a.evaluator.chunks
            since, seen = self._waiting.get(key, (now, chunks))
            if seen != chunks:  # a chunk filled meanwhile: what waits now is newer
                since = now
            if now - since >= self.delay_s:
                a.evaluator.flush()
                self._waiting.pop(key, None)
                flushed += 1
            else:
                self._waiting[key] = (since, chunks)
        for key in [k for k in self._waiting if k not in arms.arms]:
            del self._waiting[key]
        return flushed
