"""The FTRL learners of one arm in one table, scored and trained in one pass per micro-batch.

Every learner of an arm reads the same clean features (the leaky ones add a probe's block,
mllm the embedding), each from its own ``2**bits`` table: for each clean value, one cache
miss per learner, and the tables are far larger than the cache. A bank keeps the learners'
``(z, n)`` side by side per coordinate (``zn[coordinate, learner]``), so a clean value costs
one or two cache lines for all of them, and the learners become views of their column: each
is still a whole ``FTRLLogisticRegression`` (River interface, checkpoints), and a learner's
numbers are those it computes alone, to the bit (the kernels keep each learner's order of
operations).

>>> from stream_lis.learners.base import FeatureBatch
>>> a, b = FTRLLogisticRegression(bits=10, alpha=0.5), FTRLLogisticRegression(bits=10, alpha=0.5)
>>> bank = FTRLBank.of([a, b])
>>> clean = FeatureBatch([{"good": 1.0}, {"bad": 1.0}] * 50)
>>> leaky = clean.plus(lambda bits: FeatureBatch([{"hint": 1.0}, {}] * 50).hashed(bits), lambda: [])
>>> y = np.array([1.0, 0.0] * 50)
>>> p, step = bank.predict([clean, leaky])
>>> p.shape
(100, 2)
>>> bank.learn(step, y)
>>> bool(a.predict_proba_one({"good": 1.0})[True] > 0.5), a.seen, b.seen
(True, 100, 100)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..features import Hashed
from . import kernels
from .base import FeatureBatch
from .ftrl import FTRLLogisticRegression
from .hashed import sigmoid


class FTRLBank:
    """Plain FTRL learners of one configuration, their tables interleaved (see the module).

    Built by ``of`` from learners that agree on bits and hyperparameters and have seen the
    same examples (an arm's learners do); their touched coordinates are copied in, and each
    learner's table becomes its column of the bank's.
    """

    def __init__(self, learners: Sequence[FTRLLogisticRegression], fresh: bool = False) -> None:
        first = learners[0]
        self.bits = first.bits
        self.hyper = first._hyper()
        self.members = list(learners)
        self.zn = np.zeros(((1 << self.bits) + 1, len(learners), 2))
        #: Each learner's column; a learner whose ``zn`` is another array has left the bank.
        self.views = [self.zn[:, j, :] for j in range(len(learners))]
        for j, m in enumerate(learners):
            if not fresh:  # (a scan of the whole table: skipped for learners just built)
                touched = np.flatnonzero(m.zn[:, 1] != 0)
                self.views[j][touched] = m.zn[touched]
            m.zn = self.views[j]
            m.bank = (self, j)
        self._touched: tuple[tuple[int, ...], list[np.ndarray]] | None = None

    @classmethod
    def of(cls, learners: Sequence[Any], fresh: bool = False) -> "FTRLBank | None":
        """A bank of these learners, or ``None`` when they cannot share one (another model,
        other hyperparameters, unequal histories, or a single learner). ``fresh``: the
        learners were just built and have learnt nothing."""
        if len(learners) < 2 or any(type(m) is not FTRLLogisticRegression for m in learners):
            return None
        first = learners[0]
        key = (first.bits, first._hyper(), first.warmup, first.seen)
        if any((m.bits, m._hyper(), m.warmup, m.seen) != key for m in learners):
            return None
        return cls(learners, fresh)

    def holds(self, learners: Sequence[Any]) -> bool:
        """Whether these are still the bank's learners, each on its column (a restored or
        replaced learner has its own table again)."""
        return (len(learners) == len(self.members)
                and all(m is o and m.zn is v for m, o, v in zip(learners, self.members, self.views)))

    def touched(self, j: int) -> np.ndarray:
        """The coordinates learner ``j`` has learnt (what its checkpoint keeps). The bank's
        table is scanned once for all learners, not once per learner's strided column."""
        key = tuple(m.seen for m in self.members)
        if self._touched is None or self._touched[0] != key:
            learnt = self.zn[:, :, 1] != 0
            self._touched = (key, [np.flatnonzero(learnt[:, k]) for k in range(len(self.members))])
        return self._touched[1][j]

    def predict(self, batches: Sequence[FeatureBatch]) -> tuple[np.ndarray, Any]:
        """P(click) ``(rows, learners)``, learner ``j`` on ``batches[j]``, and what ``learn``
        on the same rows needs. The batches share their base block (``FeatureBatch.plus``)."""
        a: Hashed | None = None
        extras = []
        for batch in batches:
            base, extra = batch.blocks(self.bits)
            if a is None:
                a = base
            elif base is not a:
                raise ValueError("a bank's batches must share their base block")
            extras.append(extra)
        assert a is not None
        a = Hashed(*kernels.as_block(*a))
        n = a.n_rows
        ip_b = np.zeros((len(extras), n + 1), dtype=np.int64)
        ix, vs, at = [], [], 0
        for j, x in enumerate(extras):
            if x is not None and len(x.indices):
                ip_b[j] = x.indptr
                ip_b[j] += at
                at += len(x.indices)
                ix.append(x.indices)
                vs.append(x.data)
            else:
                ip_b[j] = at
        ix_b = np.concatenate(ix).astype(np.int64, copy=False) if ix else np.zeros(0, dtype=np.int64)
        v_b = np.concatenate(vs).astype(np.float64, copy=False) if vs else np.zeros(0)
        blocks = (*a, ip_b, ix_b, v_b)
        w_a, w_b = np.empty((len(a.indices), len(extras))), np.empty(len(ix_b))
        margin = kernels.bank_margin(*blocks, 0, n, self.zn, *self.hyper, w_a, w_b)
        return sigmoid(margin), (blocks, margin, w_a, w_b)

    def learn(self, step: Any, y: np.ndarray) -> None:
        """Every learner learns the rows ``predict`` scored, with labels ``y`` (0/1): one step,
        or, while the learners are young, steps within their warm-up limit (as
        ``FTRLLogisticRegression.learn_batch`` takes them)."""
        blocks, margin, w_a, w_b = step
        y = np.asarray(y, dtype=np.float64)
        n = len(y)
        first = self.members[0]
        limit = first._step_limit()
        if n <= limit:
            g = sigmoid(margin) - y[:, None]
            kernels.bank_update(*blocks, 0, n, g, self.zn, *self.hyper, w_a, w_b)
            first.seen += n
        else:
            r0 = 0
            while r0 < n:
                r1 = min(n, r0 + first._step_limit())
                m = kernels.bank_margin(*blocks, r0, r1, self.zn, *self.hyper, w_a, w_b)
                g = sigmoid(m) - y[r0:r1, None]
                kernels.bank_update(*blocks, r0, r1, g, self.zn, *self.hyper, w_a, w_b)
                first.seen += r1 - r0
                r0 = r1
        for m in self.members[1:]:
            m.seen = first.seen
