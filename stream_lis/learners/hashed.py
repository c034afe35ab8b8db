"""Vectorised learners on hashed features, usable both by the evaluator and as River classifiers.

The evaluator drives ``predict_batch`` / ``learn_batch`` on a ``FeatureBatch`` (the hot path:
the batch's CSR form and its ``compact`` column map are built once and shared). The same
objects are River ``MiniBatchClassifier``\\ s: ``learn_one`` / ``predict_proba_one`` take a
feature dict, ``learn_many`` / ``predict_proba_many`` a pandas DataFrame (one column per
feature; NaN = feature absent). Dicts and frames are hashed by feature name exactly as
``features.hash_rows`` hashes the evaluator's rows, so ``learn_one(x)`` is
``learn_batch(FeatureBatch([x]), [y])`` and a frame of one row is that row's dict.

>>> from stream_lis.learners import FTRLLogisticRegression
>>> m = FTRLLogisticRegression(bits=10, alpha=0.5)
>>> for _ in range(50):
...     m.learn_one({"good": 1.0}, True)
...     m.learn_one({"bad": 1.0}, False)
>>> p = m.predict_proba_one({"good": 1.0})
>>> sorted(p), p[True] > 0.7
([False, True], True)
>>> m.predict_one({"bad": 1.0})
False
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from river import base as river_base

from ..features import Hashed, Row, hash_rows
from .base import FeatureBatch, Learner

if TYPE_CHECKING:  # pandas is only needed for learn_many / predict_proba_many
    import pandas as pd

#: Batches up to this size keep predict's intermediates for the learn call that follows
#: (the evaluator scores a chunk, then learns from the same chunk); larger ones (offline
#: scoring of whole test sets) are not worth holding on to.
_REUSE_MAX_ROWS = 16_384


def check_hyper(counts: dict[str, Any], positive: dict[str, Any], non_negative: dict[str, Any]) -> None:
    """Refuse hyperparameters the compiled loops cannot take (a string, a bool) or that make
    the numbers meaningless (a learning rate of 0 divides by zero): a ``ValueError`` naming
    each, when the learner is built, not a numba type error on its first batch.

    >>> check_hyper({"k": 4}, {"alpha": "x"}, {"l1": -1.0})
    Traceback (most recent call last):
    ValueError: alpha must be a number > 0, got 'x'; l1 must be a number >= 0, got -1.0
    """
    bad = [f"{k} must be an integer >= 1, got {v!r}" for k, v in counts.items()
           if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1]
    for rule, params in ((">", positive), (">=", non_negative)):
        for k, v in params.items():
            number = isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")
            if not number or (v <= 0 if rule == ">" else v < 0):
                bad.append(f"{k} must be a number {rule} 0, got {v!r}")
    if bad:
        raise ValueError("; ".join(bad))


def sigmoid(margin: np.ndarray) -> np.ndarray:
    # maximum/minimum: np.clip's Python wrapper costs three times the clipping on a batch.
    return 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(margin, -35.0), 35.0)))


def _as_row(x: dict) -> Row:
    """A River feature dict as a hashable row: names as strings, absent (None/NaN) values dropped."""
    ok = True
    for k, v in x.items():
        if type(k) is not str or v is None or v != v:
            ok = False
            break
    if ok:
        return x
    return {str(k): float(v) for k, v in x.items() if v is not None and v == v}


def hash_frame(X: "pd.DataFrame", bits: int) -> Hashed:
    """A DataFrame's rows hashed into CSR as ``hash_rows`` would hash their dicts (NaN = absent)."""
    names = [str(c) for c in X.columns]
    col_idx = hash_rows([{n: 1.0} for n in names], bits).indices
    vals = X.to_numpy(dtype=np.float64, na_value=np.nan)
    present = ~np.isnan(vals)
    indptr = np.zeros(len(vals) + 1, dtype=np.int64)
    np.cumsum(present.sum(axis=1), out=indptr[1:])
    indices = np.broadcast_to(col_idx, vals.shape)[present].astype(np.int64)
    return Hashed(indptr, indices, vals[present])


class HashedLearner(Learner, river_base.MiniBatchClassifier):
    """Base of the vectorised learners: the River interface on top of the batch hot path.

    Subclasses implement ``_forward(batch) -> (margin, cache)`` and
    ``_backward(batch, cache, p, y)`` (``p`` the predictions, ``y`` the 0/1 labels), and
    ``state`` / ``from_state``. ``predict_batch`` keeps ``cache`` so that the ``learn_batch``
    on the same batch that follows does not recompute it.
    """

    bits: int
    #: Share of the examples seen so far that one update may learn from (0: no limit); see
    #: ``_learn_in_pieces``. Only matters for the first few thousand examples.
    warmup: float = 0.125
    #: Examples learnt from so far.
    seen: int = 0

    def hyperparameters(self) -> dict[str, Any]:
        # Every constructor argument is kept as an attribute of the same name that learning
        # never changes. Not so for River models in general (``RiverLearner`` says nothing).
        return self._get_params()

    # -- hot path --------------------------------------------------------------------------
    def _forward(self, batch: FeatureBatch) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _backward(self, batch: FeatureBatch, cache: Any, p: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def predict_batch(self, batch: FeatureBatch) -> np.ndarray:
        margin, cache = self._forward(batch)
        # Reused only by a learn_batch on this very batch before any other update.
        self._reuse = (batch, margin, cache) if len(batch) <= _REUSE_MAX_ROWS else None
        return sigmoid(margin)

    def learn_batch(self, batch: FeatureBatch, y: np.ndarray) -> None:
        r = self.__dict__.pop("_reuse", None)
        y = np.asarray(y, dtype=np.float64)
        n = len(y)
        if n > self._step_limit():
            self._learn_in_pieces(batch, y)
            return
        if r is not None and r[0] is batch:
            margin, cache = r[1], r[2]
        else:
            margin, cache = self._forward(batch)
        self._backward(batch, cache, sigmoid(margin), y)
        self.seen += n

    def _step_limit(self) -> int:
        """Most examples one update may learn from now (``warmup``: a share of those seen)."""
        if not self.warmup:
            return 1 << 62
        return max(1, int(self.seen * self.warmup))

    def _learn_in_pieces(self, batch: FeatureBatch, y: np.ndarray) -> None:
        """Learn a batch as consecutive pieces, each within the current step limit.

        A young model updated once from a large batch takes one big stale step (every row
        pushes the intercept and the dense features the same way) and overshoots; per-event
        learning would have corrected itself after a few hundred rows. So while the model is
        young its updates grow with what it has seen, and a large batch is learnt in pieces
        (its predictions were made before learning, so evaluation stays prequential). The
        pieces share the batch's hashed form and column map: no re-hashing, no np.unique.
        """
        bits = self.bits
        X = batch.hashed(bits)
        cols, inv, rows = batch.compact(bits)
        n, a = len(y), 0
        while a < n:
            b = min(n, a + self._step_limit())
            s, e = int(X.indptr[a]), int(X.indptr[b])
            piece = FeatureBatch(n=b - a)
            piece._hashed[bits] = Hashed(X.indptr[a:b + 1] - s, X.indices[s:e], X.data[s:e])
            if 4 * (e - s) < len(X.indices):
                # A small piece (a young model's first steps): its own column map, so a step
                # costs what its rows touch, not the whole batch's columns (same numbers:
                # an untouched column's update is zero).
                pc, pinv = np.unique(X.indices[s:e], return_inverse=True)
                piece._compact[bits] = (pc, pinv, rows[s:e] - a)
            else:
                piece._compact[bits] = (cols, inv[s:e], rows[s:e] - a)
            margin, cache = self._forward(piece)
            self._backward(piece, cache, sigmoid(margin), y[a:b])
            self.seen += b - a
            a = b

    # -- River -----------------------------------------------------------------------------
    def learn_one(self, x: dict, y: Any) -> None:
        self.learn_batch(FeatureBatch([_as_row(x)]), np.array([1.0 if y else 0.0]))

    def predict_proba_one(self, x: dict, **kwargs: Any) -> dict[bool, float]:
        p = float(self.predict_batch(FeatureBatch([_as_row(x)]))[0])
        self.__dict__.pop("_reuse", None)
        return {False: 1.0 - p, True: p}

    def _frame_batch(self, X: "pd.DataFrame") -> FeatureBatch:
        return FeatureBatch(n=len(X), hash_fn=lambda bits: hash_frame(X, bits),
                            rows_fn=lambda: [_as_row(r) for r in X.to_dict(orient="records")])

    def learn_many(self, X: "pd.DataFrame", y: "pd.Series") -> None:
        self.learn_batch(self._frame_batch(X), np.asarray(y, dtype=np.float64))

    def predict_proba_many(self, X: "pd.DataFrame") -> "pd.DataFrame":
        import pandas as pd

        p = self.predict_batch(self._frame_batch(X))
        self.__dict__.pop("_reuse", None)
        return pd.DataFrame({False: 1.0 - p, True: p}, index=X.index, columns=[False, True])

    # -- checkpoints: pickle the compact state, never the dense tables ---------------------
    def __getstate__(self) -> dict[str, Any]:
        return self.state()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(type(self).from_state(state).__dict__)

    @classmethod
    def _unit_test_params(cls):
        yield {"bits": 12}

