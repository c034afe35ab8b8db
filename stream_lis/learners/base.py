"""The learner interface the evaluator drives: score a micro-batch, then learn from it.

Learners receive a ``FeatureBatch``: the rows as dicts (what River learners take) and, built
on first use and shared by every learner that asks, the rows hashed into a CSR matrix (what
vectorised learners take).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence

import numpy as np

from ..features import Hashed, Row, hash_rows


class FeatureBatch:
    """Rows of one feature set for one micro-batch, with a cached hashed form per width.

    A batch is built from dict rows, or (the hot path) from a function that hashes the
    features straight into CSR (``hash_fn``) plus one that builds the dict rows only if a
    per-event learner asks for them (``rows_fn``). ``base.plus(extra)`` is the base feature set
    with more features per row (clean + leaked); both its dict rows and its hashed form are
    derived lazily from the base's, so a batch of vectorised learners hashes the clean
    features once and never copies the dicts.
    """

    __slots__ = ("_rows", "_base", "_extra", "_hashed", "_hash_fn", "_rows_fn", "_n", "_compact")

    def __init__(self, rows: Sequence[Row] | None = None, *, base: "FeatureBatch | None" = None,
                 extra: Sequence[Row] | None = None, n: int | None = None,
                 hash_fn: Callable[[int], Hashed] | None = None,
                 rows_fn: Callable[[], Sequence[Row]] | None = None) -> None:
        self._rows = rows
        self._base, self._extra = base, extra
        self._hash_fn, self._rows_fn = hash_fn, rows_fn
        self._n = n
        self._hashed: dict[int, Hashed] = {}
        self._compact: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @property
    def rows(self) -> Sequence[Row]:
        if self._rows is None:
            if self._rows_fn is not None:
                self._rows = self._rows_fn()
            else:
                assert self._base is not None and self._extra is not None
                self._rows = [{**a, **b} if b else a for a, b in zip(self._base.rows, self._extra)]
        return self._rows

    def __len__(self) -> int:
        if self._rows is not None:
            return len(self._rows)
        if self._n is not None:
            return self._n
        return len(self._extra or ())

    def hashed(self, bits: int) -> Hashed:
        X = self._hashed.get(bits)
        if X is None:
            if self._hash_fn is not None:
                X = self._hash_fn(bits)
            elif self._base is not None and self._extra is not None:
                X = self._base.hashed(bits).concat(hash_rows(self._extra, bits))
            else:
                X = hash_rows(self.rows, bits)
            self._hashed[bits] = X
        return X

    def compact(self, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(cols, inv, row_ids)``: the distinct columns the batch touches (sorted), each
        stored value's position in ``cols``, and its row. Computed once per batch, shared by
        every vectorised learner's predict and learn."""
        c = self._compact.get(bits)
        if c is None:
            X = self.hashed(bits)
            cols, inv = np.unique(X.indices, return_inverse=True)
            c = self._compact[bits] = (cols, inv, X.row_ids())
        return c

    def plus(self, extra: Sequence[Row]) -> "FeatureBatch":
        """This batch with ``extra`` features added to each row."""
        return FeatureBatch(base=self, extra=extra)


class Learner(ABC):
    """An online binary classifier evaluated prequentially on micro-batches."""

    @abstractmethod
    def predict_batch(self, batch: FeatureBatch) -> np.ndarray:
        """P(click) for every row, before learning from any of them."""

    @abstractmethod
    def learn_batch(self, batch: FeatureBatch, y: np.ndarray) -> None:
        """Learn from the rows with labels ``y`` (0/1)."""

    def state(self) -> Any:
        """Plain data or picklable object that restores the learner (checkpoints)."""
        return self

    @classmethod
    def from_state(cls, state: Any) -> "Learner":
        return state
