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
    per-event learner asks for them (``rows_fn``). ``base.plus(extra_fn, rows_fn)`` is the base
    feature set with more features per row (clean + leaked, clean + embedding), kept as two
    blocks (``blocks``): the compiled learners read the base block every learner shares plus
    their own, so the clean features are hashed once per batch and never copied.
    """

    __slots__ = ("_rows", "_base", "_extra_fn", "_extra", "_hashed", "_hash_fn", "_rows_fn", "_n", "_compact")

    def __init__(self, rows: Sequence[Row] | None = None, *, base: "FeatureBatch | None" = None,
                 extra_fn: Callable[[int], Hashed] | None = None, n: int | None = None,
                 hash_fn: Callable[[int], Hashed] | None = None,
                 rows_fn: Callable[[], Sequence[Row]] | None = None) -> None:
        self._rows = rows
        self._base, self._extra_fn = base, extra_fn
        self._hash_fn, self._rows_fn = hash_fn, rows_fn
        self._n = n if n is not None or base is None else len(base)
        self._hashed: dict[int, Hashed] = {}
        self._extra: dict[int, Hashed] = {}
        self._compact: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @property
    def rows(self) -> Sequence[Row]:
        if self._rows is None:
            assert self._rows_fn is not None, "a batch without rows needs rows_fn"
            self._rows = self._rows_fn()
        return self._rows

    def __len__(self) -> int:
        if self._n is not None:
            return self._n
        return len(self.rows)

    def blocks(self, bits: int) -> tuple[Hashed, Hashed | None]:
        """The base block and this batch's own block (``None``: the batch is one block)."""
        if self._base is None:
            return self.hashed(bits), None
        X = self._extra.get(bits)
        if X is None:
            assert self._extra_fn is not None
            X = self._extra[bits] = self._extra_fn(bits)
        return self._base.hashed(bits), X

    def hashed(self, bits: int) -> Hashed:
        """All features of each row as one CSR matrix (what the numpy learners read)."""
        X = self._hashed.get(bits)
        if X is None:
            if self._base is not None:
                a, b = self.blocks(bits)
                X = a.concat(b)
            elif self._hash_fn is not None:
                X = self._hash_fn(bits)
            else:
                X = hash_rows(self.rows, bits)
            self._hashed[bits] = X
        return X

    def compact(self, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(cols, inv, row_ids)``: the distinct columns the batch touches (sorted), each
        stored value's position in ``cols``, and its row. Computed once per batch, shared by
        every numpy learner's predict and learn (the factorisation machine's factors)."""
        c = self._compact.get(bits)
        if c is None:
            X = self.hashed(bits)
            cols, inv = np.unique(X.indices, return_inverse=True)
            c = self._compact[bits] = (cols, inv, X.row_ids())
        return c

    def plus(self, extra_fn: Callable[[int], Hashed], rows_fn: Callable[[], Sequence[Row]]) -> "FeatureBatch":
        """This batch with more features per row: ``extra_fn(bits)`` hashes them, ``rows_fn()``
        gives the merged dict rows (only a per-event learner asks for those)."""
        return FeatureBatch(base=self, extra_fn=extra_fn, rows_fn=rows_fn)


class Learner(ABC):
    """An online binary classifier evaluated prequentially on micro-batches."""

    @abstractmethod
    def predict_batch(self, batch: FeatureBatch) -> np.ndarray:
        """P(click) for every row, before learning from any of them."""

    @abstractmethod
    def learn_batch(self, batch: FeatureBatch, y: np.ndarray) -> None:
        """Learn from the rows with labels ``y`` (0/1)."""

    def hyperparameters(self) -> dict[str, Any]:
        """The values the learner was built with: a resumed learner keeps them, so a worker
        compares them with what its config builds now (``ArmSet.load_arm``). ``{}``: nothing
        to compare."""
        return {}

    def state(self) -> Any:
        """Plain data or picklable object that restores the learner (checkpoints)."""
        return self

    @classmethod
    def from_state(cls, state: Any) -> "Learner":
        return state
