"""Hashed-feature logistic regression trained with FTRL-Proximal, vectorised over micro-batches.

FTRL-Proximal (McMahan et al., "Ad Click Prediction: a View from the Trenches", KDD 2013) is
the standard online learner for sparse CTR data: per-coordinate adaptive learning rates suit
features seen at very different frequencies (popular vs. fresh items), and its L1 term keeps
weights of useless features at exactly zero, which matters here: a useless leaked feature
(the ``noise`` probe) must not cost AUC, or LIS would be biased below zero.

Each micro-batch touches a few thousand of the ``2**bits`` coordinates; weights are
materialised only for those (the batch's ``compact`` column map, computed once per batch and
shared by predict and learn), so the cost per batch is independent of the table size.

>>> from stream_lis.learners.base import FeatureBatch
>>> m = FTRLLogisticRegression(bits=10, alpha=0.5)
>>> rows = [{"good": 1.0}, {"bad": 1.0}] * 200
>>> y = np.array([1, 0] * 200)
>>> for k in range(0, 400, 20): m.learn_batch(FeatureBatch(rows[k:k + 20]), y[k:k + 20])
>>> p = m.predict_batch(FeatureBatch([{"good": 1.0}, {"bad": 1.0}]))
>>> bool(p[0] > 0.8 and p[1] < 0.2)
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import FeatureBatch
from .hashed import HashedLearner


class FTRLLogisticRegression(HashedLearner):
    """Logistic regression on hashed features, FTRL-Proximal updates, intercept unpenalised.

    ``alpha``/``beta`` set the per-coordinate learning rate ``alpha / (beta + sqrt(n_i))``,
    ``l1``/``l2`` the regularisation; ``2**bits`` hashed coordinates. While young, one update
    learns from at most ``warmup`` times the examples seen so far (larger batches are learnt in
    pieces; ``0``: never split). A River
    ``MiniBatchClassifier``:

    >>> m = FTRLLogisticRegression(bits=12, alpha=0.3)
    >>> for _ in range(100):
    ...     m.learn_one({"ad=shoes": 1.0}, True)
    ...     m.learn_one({"ad=socks": 1.0}, False)
    >>> {y: round(p, 2) for y, p in m.predict_proba_one({"ad=shoes": 1.0}).items()}
    {False: 0.12, True: 0.88}
    >>> m.predict_one({"ad=socks": 1.0})
    False

    ``learn_many(X, y)`` / ``predict_proba_many(X)`` take a pandas DataFrame (one column per
    feature, NaN where absent) and give the same numbers.
    """

    def __init__(self, bits: int = 20, alpha: float = 0.05, beta: float = 1.0, l1: float = 1.0, l2: float = 1.0,
                 warmup: float = 0.125) -> None:
        self.bits, self.warmup, self.seen = bits, warmup, 0
        self.alpha, self.beta, self.l1, self.l2 = alpha, beta, l1, l2
        size = (1 << bits) + 1  # last slot: intercept
        self.z = np.zeros(size)
        self.n = np.zeros(size)

    # -- the linear part, also used by the factorisation machine ---------------------------
    def _weights(self, cols: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, float]:
        """Weights of ``cols`` and of the intercept, with ``sqrt(n)`` of each (for the update)."""
        z = self.z[cols]
        sq = np.sqrt(self.n[cols])
        l1 = self.l1
        w = (np.copysign(l1, z) - z) / ((self.beta + sq) / self.alpha + self.l2)
        w[np.abs(z) <= l1] = 0.0
        b = self._bias
        sqb = math.sqrt(self.n[b])
        wb = -float(self.z[b]) / ((self.beta + sqb) / self.alpha + self.l2)
        return w, wb, sq, sqb

    def _linear(self, batch: FeatureBatch) -> tuple[np.ndarray, Any]:
        X = batch.hashed(self.bits)
        cols, inv, rows = batch.compact(self.bits)
        w, wb, sq, sqb = self._weights(cols)
        margin = np.bincount(rows, weights=X.data * w[inv], minlength=X.n_rows)
        margin += wb
        return margin, (w, wb, sq, sqb)

    def _update(self, batch: FeatureBatch, lin: Any, g_row: np.ndarray) -> None:
        """One FTRL-Proximal step from the rows' log-loss gradients ``g_row`` (p - y)."""
        w, wb, sq, sqb = lin
        X = batch.hashed(self.bits)
        cols, inv, rows = batch.compact(self.bits)
        g_nnz = X.data * g_row[rows]
        g = np.bincount(inv, weights=g_nnz, minlength=len(cols))
        # Per-example squared gradients, as per-event FTRL would accumulate them: summing the
        # batch gradient first would shrink step sizes by the batch's repeat count.
        g_nnz *= g_nnz
        n_new = self.n[cols] + np.bincount(inv, weights=g_nnz, minlength=len(cols))
        sq_new = np.sqrt(n_new)
        self.z[cols] += g - (sq_new - sq) / self.alpha * w
        self.n[cols] = n_new
        b = self._bias
        nb = float(self.n[b]) + float(g_row @ g_row)
        self.z[b] += float(g_row.sum()) - (math.sqrt(nb) - sqb) / self.alpha * wb
        self.n[b] = nb

    @property
    def _bias(self) -> int:
        return 1 << self.bits

    # -- HashedLearner ---------------------------------------------------------------------
    _forward = _linear

    def _backward(self, batch: FeatureBatch, cache: Any, p: np.ndarray, y: np.ndarray) -> None:
        self._update(batch, cache, p - y)

    def state(self) -> dict[str, Any]:
        # Checkpoints pickle learners: keep only the touched coordinates (a few percent of the
        # table), not two dense 2**bits arrays.
        nz = np.flatnonzero(self.n)
        return {"kind": "ftrl", "bits": self.bits, "hyper": [self.alpha, self.beta, self.l1, self.l2],
                "idx": nz, "z": self.z[nz], "n": self.n[nz], "warmup": self.warmup, "seen": self.seen}

    @classmethod
    def from_state(cls, state: Any) -> "FTRLLogisticRegression":
        m = cls(state["bits"], *state["hyper"], warmup=state.get("warmup", 0.0))
        m.seen = state.get("seen", 0)
        idx = np.asarray(state["idx"], dtype=np.int64)
        m.z[idx] = state["z"]
        m.n[idx] = state["n"]
        return m
