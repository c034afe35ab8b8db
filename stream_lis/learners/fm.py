"""A hashed factorisation machine for click prediction, vectorised over micro-batches.

A factorisation machine (Rendle, ICDM 2010) adds to a linear model one ``k``-dimensional
factor ``v_i`` per feature and scores every pair of features of a row by ``<v_i, v_j>``:

    margin(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j
              = w0 + sum_i w_i x_i + 0.5 * sum_f [(sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2]

The second form costs O(nnz * k) per row, so a user x item or segment x category effect,
which no linear model on one-hot features can express, is learnt without listing crosses.
Here the linear part is exactly ``FTRLLogisticRegression`` (FTRL-Proximal, L1 keeps useless
features at zero) trained on the FM's gradient; the factors use AdaGrad with L2, per-example
squared gradients (so a micro-batch steps like the same examples one by one would).

Factors start small and random, drawn from a hash of ``(seed, column)``: the initial value of
a column does not depend on when it is first seen, so learning one example at a time and in
micro-batches start from the same model. Only factor rows of columns that were learnt from
are stored (a ``2**bits`` int32 slot map and a growing pool), and pickled.

>>> from stream_lis.learners.base import FeatureBatch
>>> rows = [{"u=a": 1.0, "i=x": 1.0}, {"u=a": 1.0, "i=y": 1.0},
...         {"u=b": 1.0, "i=x": 1.0}, {"u=b": 1.0, "i=y": 1.0}]
>>> y = np.array([1.0, 0.0, 0.0, 1.0])     # XOR: no linear model can fit it
>>> m = FMClassifier(bits=10, k=4, lr=0.2, init_std=0.1)
>>> for _ in range(300): m.learn_batch(FeatureBatch(rows), y)
>>> m.predict_batch(FeatureBatch(rows)).round(1).tolist()
[1.0, 0.0, 0.0, 1.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import FeatureBatch
from .ftrl import FTRLLogisticRegression
from .hashed import HashedLearner, check_hyper

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _hash_uniform(keys: np.ndarray) -> np.ndarray:
    """splitmix64 of uint64 ``keys`` mapped to uniforms in [-1, 1): deterministic, order-free."""
    z = keys + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * (2.0 / (1 << 53)) - 1.0


def _row_sums(A: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Per-row sums of the stored values ``A`` (nnz x k) of a CSR matrix."""
    n = len(indptr) - 1
    if len(A) == 0:
        return np.zeros((n, A.shape[1]))
    lens = np.diff(indptr)
    if lens[-1] == 0:  # reduceat needs every start to index into A
        A = np.concatenate([A, np.zeros((1, A.shape[1]))])
    out = np.add.reduceat(A, indptr[:-1], axis=0)
    empty = lens == 0
    if empty.any():
        out[empty] = 0.0
    return out


class FMClassifier(HashedLearner):
    """Factorisation machine on hashed features, logistic loss, for binary targets.

    ``k`` factors per feature; linear part FTRL-Proximal with ``alpha, beta, l1, l2`` (as
    ``FTRLLogisticRegression``); factors AdaGrad with step ``lr`` and L2 ``l2_v``, initialised
    uniform with standard deviation ``init_std`` from ``seed``; ``warmup`` as in
    ``FTRLLogisticRegression``. A River ``MiniBatchClassifier``:

    >>> m = FMClassifier(bits=12, k=4, lr=0.2, init_std=0.1)
    >>> data = [({"seg=a": 1.0, "cat=x": 1.0}, True), ({"seg=a": 1.0, "cat=y": 1.0}, False),
    ...         ({"seg=b": 1.0, "cat=x": 1.0}, False), ({"seg=b": 1.0, "cat=y": 1.0}, True)]
    >>> for _ in range(300):
    ...     for x, y in data: m.learn_one(x, y)
    >>> [round(m.predict_proba_one(x)[True], 1) for x, _ in data]
    [1.0, 0.0, 0.0, 1.0]
    >>> m.predict_one({"seg=b": 1.0, "cat=y": 1.0})
    True

    ``learn_many(X, y)`` / ``predict_proba_many(X)`` take a pandas DataFrame (one column per
    feature, NaN where absent) and give the same numbers.
    """

    def __init__(self, bits: int = 20, k: int = 8, alpha: float = 0.1, beta: float = 5.0, l1: float = 3.0,
                 l2: float = 1.0, lr: float = 0.02, l2_v: float = 1e-4, init_std: float = 0.01,
                 seed: int = 0, warmup: float = 0.125) -> None:
        check_hyper({"bits": bits, "k": k}, {"alpha": alpha, "lr": lr},
                    {"beta": beta, "l1": l1, "l2": l2, "l2_v": l2_v, "init_std": init_std, "warmup": warmup})
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.bits, self.k, self.warmup, self.seen = bits, k, warmup, 0
        self.alpha, self.beta, self.l1, self.l2 = alpha, beta, l1, l2
        self.lr, self.l2_v, self.init_std, self.seed = lr, l2_v, init_std, seed
        self.linear = FTRLLogisticRegression(bits, alpha, beta, l1, l2, warmup=0.0)
        self._slot = np.full(1 << bits, -1, dtype=np.int32)  # column -> row of the pool
        self._cols = np.zeros(0, dtype=np.int64)  # pool row -> column
        self._V = np.zeros((0, k))  # factors
        self._G = np.zeros((0, k))  # AdaGrad sums of squared gradients
        self._used = 0

    def _init_factors(self, cols: np.ndarray) -> np.ndarray:
        keys = (cols.astype(np.uint64)[:, None] * np.uint64(self.k) + np.arange(self.k, dtype=np.uint64)
                + np.uint64(self.seed) * np.uint64(1 << 40))
        return _hash_uniform(keys) * (self.init_std * np.sqrt(3.0))

    def _factors(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Factors of ``cols`` (initial values for unseen ones, not stored) and their pool rows."""
        slots = self._slot[cols]
        new = slots < 0
        if not new.any():
            return self._V[slots], slots
        V = np.empty((len(cols), self.k))
        V[~new] = self._V[slots[~new]]
        V[new] = self._init_factors(cols[new])
        return V, slots

    def _allocate(self, cols: np.ndarray, slots: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Give pool rows to the columns of ``cols`` that have none (``slots < 0``)."""
        new = np.flatnonzero(slots < 0)
        if len(new) == 0:
            return slots
        start, stop = self._used, self._used + len(new)
        if stop > len(self._V):
            cap = max(stop, 2 * len(self._V), 1024)
            self._V = np.concatenate([self._V, np.zeros((cap - len(self._V), self.k))])
            self._G = np.concatenate([self._G, np.zeros((cap - len(self._G), self.k))])
            self._cols = np.concatenate([self._cols, np.zeros(cap - len(self._cols), dtype=np.int64)])
        slots = slots.copy()
        slots[new] = np.arange(start, stop, dtype=np.int32)
        self._slot[cols[new]] = slots[new]
        self._cols[start:stop] = cols[new]
        self._V[start:stop] = V[new]
        self._used = stop
        return slots

    def _forward(self, batch: FeatureBatch) -> tuple[np.ndarray, Any]:
        margin, lin = self.linear._linear(batch)
        X = batch.hashed(self.bits)
        cols, inv, rows = batch.compact(self.bits)
        V, slots = self._factors(cols)
        VX = V[inv]
        VX *= X.data[:, None]  # v_if x_i, per stored value
        S = _row_sums(VX, X.indptr)  # sum_i v_if x_i, per row
        sq = np.bincount(rows, weights=np.einsum("ij,ij->i", VX, VX), minlength=X.n_rows)
        margin += 0.5 * (np.einsum("ij,ij->i", S, S) - sq)
        return margin, (lin, V, slots, VX, S)

    def _backward(self, batch: FeatureBatch, cache: Any, p: np.ndarray, y: np.ndarray) -> None:
        lin, V, slots, VX, S = cache
        g_row = p - y
        self.linear._update(batch, lin, g_row)
        X = batch.hashed(self.bits)
        cols, inv, rows = batch.compact(self.bits)
        # d margin_r / d v_if = x_i (S_rf - v_if x_i); per stored value, then summed per column.
        G = S[rows]
        G -= VX
        G *= (g_row[rows] * X.data)[:, None]
        if self.l2_v:
            G += self.l2_v * V[inv]
        k = self.k
        flat = (inv[:, None] * k + np.arange(k)).ravel()
        size = len(cols) * k
        grad = np.bincount(flat, weights=G.ravel(), minlength=size).reshape(-1, k)
        G *= G
        g2 = np.bincount(flat, weights=G.ravel(), minlength=size).reshape(-1, k)
        slots = self._allocate(cols, slots, V)
        acc = self._G[slots] + g2
        self._G[slots] = acc
        np.sqrt(acc, out=acc)
        acc += 1e-12
        self._V[slots] = V - self.lr * grad / acc

    def state(self) -> dict[str, Any]:
        u = self._used
        return {"kind": "fm", "params": {"bits": self.bits, "k": self.k, "alpha": self.alpha, "beta": self.beta,
                                         "l1": self.l1, "l2": self.l2, "lr": self.lr, "l2_v": self.l2_v,
                                         "init_std": self.init_std, "seed": self.seed,
                                         "warmup": self.warmup}, "seen": self.seen,
                "linear": self.linear.state(), "cols": self._cols[:u].copy(), "V": self._V[:u].copy(),
                "G": self._G[:u].copy()}

    @classmethod
    def from_state(cls, state: Any) -> "FMClassifier":
        m = cls(**state["params"])
        m.linear = FTRLLogisticRegression.from_state(state["linear"])
        m.seen = state["seen"]
        cols = np.asarray(state["cols"], dtype=np.int64)
        m._cols, m._V, m._G = cols, np.asarray(state["V"], dtype=np.float64), np.asarray(state["G"], dtype=np.float64)
        m._used = len(cols)
        m._slot[cols] = np.arange(len(cols), dtype=np.int32)
        return m
