"""Hashed-feature logistic regression trained with FTRL-Proximal, vectorised over micro-batches.

FTRL-Proximal (McMahan et al., "Ad Click Prediction: a View from the Trenches", KDD 2013) is
the standard online learner for sparse CTR data: per-coordinate adaptive learning rates suit
features seen at very different frequencies (popular vs. fresh items), and its L1 term keeps
weights of useless features at exactly zero, which matters here: a useless leaked feature
(the ``noise`` probe) must not cost AUC, or LIS would be biased below zero.

Each micro-batch touches a few thousand of the ``2**bits`` coordinates; the compiled loops
of ``kernels`` compute those weights on the fly from the FTRL state, so the cost of a batch is
a few operations per stored feature value, whatever the table size.

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
from . import kernels
from .base import FeatureBatch
from .hashed import HashedLearner, check_hyper, sigmoid


class FTRLLogisticRegression(HashedLearner):
    """Logistic regression on hashed features, FTRL-Proximal updates, intercept unpenalised.

    ``alpha``/``beta`` set the per-coordinate learning rate ``alpha / (beta + sqrt(n_i))``,
    ``l1``/``l2`` the regularisation; ``2**bits`` hashed coordinates. While young, one update
    learns from at most ``warmup`` times the examples seen so far (larger batches are learnt in
    pieces; ``0``: never split).

    The defaults (``alpha`` 0.1, ``beta`` 5, ``l1`` 3) keep the figures close to those of
    per-event River ``LogisticRegression`` (the reference ``benchmarks/bench_quality.py``
    compares against): with the former ``alpha`` 0.05, ``beta`` 1 and ``l1`` 1, FTRL learnt
    rare user and item ids that River's single SGD rate learns slowly, so its clean learner was
    the stronger and its LIS smaller (up to 0.0097 below River's on the simulator, now within 0.0042).
    A River ``MiniBatchClassifier``:

    >>> m = FTRLLogisticRegression(bits=12, alpha=0.3)
    >>> for _ in range(100):
    ...     m.learn_one({"ad=shoes": 1.0}, True)
    ...     m.learn_one({"ad=socks": 1.0}, False)
    >>> {y: round(p, 2) for y, p in m.predict_proba_one({"ad=shoes": 1.0}).items()}
    {False: 0.23, True: 0.77}
    >>> m.predict_one({"ad=socks": 1.0})
    False

    ``learn_many(X, y)`` / ``predict_proba_many(X)`` take a pandas DataFrame (one column per
    feature, NaN where absent) and give the same numbers.
    """

    def __init__(self, bits: int = 20, alpha: float = 0.1, beta: float = 5.0, l1: float = 3.0, l2: float = 1.0,
                 warmup: float = 0.125) -> None:
        check_hyper({"bits": bits}, {"alpha": alpha}, {"beta": beta, "l1": l1, "l2": l2, "warmup": warmup})
        self.bits, self.warmup, self.seen = bits, warmup, 0
        self.alpha, self.beta, self.l1, self.l2 = alpha, beta, l1, l2
        size = (1 << bits) + 1  # last slot: intercept
        #: Per coordinate, FTRL's ``z`` and ``n`` side by side (``kernels``: one cache line).
        self.zn = np.zeros((size, 2))

    @property
    def z(self) -> np.ndarray:
        return self.zn[:, 0]

    @z.setter
    def z(self, value: np.ndarray) -> None:
        self.zn[:, 0] = value

    @property
    def n(self) -> np.ndarray:
        return self.zn[:, 1]

    @n.setter
    def n(self, value: np.ndarray) -> None:
        self.zn[:, 1] = value

    # -- the linear part, also used by the factorisation machine ---------------------------
    def _hyper(self) -> tuple[float, float, float, float, int]:
        return self.alpha, self.beta, self.l1, self.l2, 1 << self.bits

    def _blocks(self, batch: FeatureBatch) -> tuple[Hashed, Hashed]:
        a, b = batch.blocks(self.bits)
        a = Hashed(*kernels.as_block(*a))
        return a, (Hashed(*kernels.as_block(*b)) if b is not None else Hashed(*kernels.empty_block(a.n_rows)))

    def _linear(self, batch: FeatureBatch, r0: int = 0, r1: int | None = None) -> tuple[np.ndarray, Any]:
        """Margins of rows ``[r0, r1)``, and what ``_update`` needs: the blocks and the weights
        each stored value was scored with."""
        a, b = self._blocks(batch)
        w_a, w_b = np.empty(len(a.indices)), np.empty(len(b.indices))
        margin = kernels.ftrl_margin(*a, *b, r0, a.n_rows if r1 is None else r1, self.zn, *self._hyper(), w_a, w_b)
        return margin, (a, b, w_a, w_b)

    def _update(self, batch: FeatureBatch, lin: Any, g_row: np.ndarray, r0: int = 0) -> None:
        """One FTRL-Proximal step from the log-loss gradients ``g_row`` (p - y) of the rows
        from ``r0`` on; ``lin``: what ``_linear`` returned for these rows, with no step since."""
        a, b, w_a, w_b = lin
        kernels.ftrl_update(*a, *b, r0, r0 + len(g_row), np.ascontiguousarray(g_row, dtype=np.float64),
                            self.zn, *self._hyper(), w_a, w_b)

    # -- HashedLearner ---------------------------------------------------------------------
    _forward = _linear

    def _backward(self, batch: FeatureBatch, cache: Any, p: np.ndarray, y: np.ndarray) -> None:
        self._update(batch, cache, p - y)

    def _learn_in_pieces(self, batch: FeatureBatch, y: np.ndarray) -> None:
        # Pieces are row ranges of the same blocks: nothing is sliced or re-hashed.
        n, r0 = len(y), 0
        while r0 < n:
            r1 = min(n, r0 + self._step_limit())
            margin, lin = self._linear(batch, r0, r1)
            self._update(batch, lin, sigmoid(margin) - y[r0:r1], r0)
            self.seen += r1 - r0
            r0 = r1

    def state(self) -> dict[str, Any]:
        # Checkpoints pickle learners: keep only the touched coordinates (a few percent of the
        # table), not the dense (2**bits + 1, 2) table.
        # A comparison on the strided column, not flatnonzero(n): that copies it first (3x).
        bank = self.__dict__.get("bank")  # (FTRLBank, column) while the table is a bank's column
        if bank is not None and self.zn is bank[0].views[bank[1]]:
            nz = bank[0].touched(bank[1])
        else:
            nz = np.flatnonzero(self.zn[:, 1] != 0)
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
