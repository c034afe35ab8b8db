"""Hashed-feature logistic regression trained with FTRL-Proximal, vectorised over micro-batches.

FTRL-Proximal (McMahan et al., "Ad Click Prediction: a View from the Trenches", KDD 2013) is
the standard online learner for sparse CTR data: per-coordinate adaptive learning rates suit
features seen at very different frequencies (popular vs. fresh items), and its L1 term keeps
weights of useless features at exactly zero, which matters here: a useless leaked feature
(the ``noise`` probe) must not cost AUC, or LIS would be biased below zero.

Each micro-batch touches a few thousand of the ``2**bits`` coordinates; weights are
materialised only for those (``np.unique`` over the batch's column indices), so the cost per
batch is independent of the table size.

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

from typing import Any

import numpy as np

from ..features import Hashed
from .base import FeatureBatch, Learner


class FTRLLogisticRegression(Learner):
    """Logistic regression on hashed features, FTRL-Proximal updates, intercept unpenalised."""

    def __init__(self, bits: int = 20, alpha: float = 0.05, beta: float = 1.0, l1: float = 1.0, l2: float = 1.0) -> None:
        self.bits = bits
        self.alpha, self.beta, self.l1, self.l2 = alpha, beta, l1, l2
        size = (1 << bits) + 1  # last slot: intercept
        self.z = np.zeros(size)
        self.n = np.zeros(size)

    @property
    def _bias(self) -> int:
        return 1 << self.bits

    def _weights(self, cols: np.ndarray) -> np.ndarray:
        z, n = self.z[cols], self.n[cols]
        l1 = np.where(cols == self._bias, 0.0, self.l1)
        w = -(z - np.sign(z) * l1) / ((self.beta + np.sqrt(n)) / self.alpha + self.l2)
        w[np.abs(z) <= l1] = 0.0
        return w

    def _margins(self, X: Hashed) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        cols, inv = np.unique(X.indices, return_inverse=True)
        cols = np.append(cols, self._bias)
        w = self._weights(cols)
        rows = X.row_ids()
        margin = np.bincount(rows, weights=X.data * w[inv], minlength=X.n_rows) + w[-1]
        return margin, cols, inv, rows

    def predict_batch(self, batch: FeatureBatch) -> np.ndarray:
        margin = self._margins(batch.hashed(self.bits))[0]
        return 1.0 / (1.0 + np.exp(-np.clip(margin, -35, 35)))

    def learn_batch(self, batch: FeatureBatch, y: np.ndarray) -> None:
        X = batch.hashed(self.bits)
        margin, cols, inv, rows = self._margins(X)
        p = 1.0 / (1.0 + np.exp(-np.clip(margin, -35, 35)))
        g_row = p - y
        g_nnz = X.data * g_row[rows]
        g = np.append(np.bincount(inv, weights=g_nnz, minlength=len(cols) - 1), g_row.sum())
        # Per-example squared gradients, as per-event FTRL would accumulate them: summing the
        # batch gradient first would shrink step sizes by the batch's repeat count.
        g2 = np.append(np.bincount(inv, weights=g_nnz * g_nnz, minlength=len(cols) - 1), (g_row * g_row).sum())
        w = self._weights(cols)
        n_old = self.n[cols]
        n_new = n_old + g2
        sigma = (np.sqrt(n_new) - np.sqrt(n_old)) / self.alpha
        self.z[cols] += g - sigma * w
        self.n[cols] = n_new

    def __getstate__(self) -> dict[str, Any]:
        # Checkpoints pickle learners: keep only the touched coordinates (a few percent of the
        # table), not two dense 2**bits arrays.
        return self.state()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(FTRLLogisticRegression.from_state(state).__dict__)

    def state(self) -> dict[str, Any]:
        nz = np.flatnonzero(self.n)
        return {"kind": "ftrl", "bits": self.bits, "hyper": [self.alpha, self.beta, self.l1, self.l2],
                "idx": nz, "z": self.z[nz], "n": self.n[nz]}

    @classmethod
    def from_state(cls, state: Any) -> "FTRLLogisticRegression":
        m = cls(state["bits"], *state["hyper"])
        idx = np.asarray(state["idx"], dtype=np.int64)
        m.z[idx] = state["z"]
        m.n[idx] = state["n"]
        return m
