"""Compiled inner loops of the FTRL learner (numba), behind the plain Python classes.

The learners' arithmetic is a few operations per stored feature value, which numpy can only
do through temporaries, gathers, ``np.unique`` column maps and ``np.bincount`` scatters (most
of the old cost). These loops do the same arithmetic in one pass over the CSR rows, straight
on the ``2**bits`` weight tables, with no per-batch column map.

A feature set is given as two CSR blocks, ``a`` (the clean features) and ``b`` (a probe's
leaked features or the embedding; an empty block for the clean learner): a leaky learner
reads the clean block every learner shares, and nothing is concatenated per learner.

Numbers are the same as the textbook mini-batch FTRL-Proximal step: every row of
``[r0, r1)`` is scored with the weights before the step, gradients are summed per column, and
each touched column takes one step (squared gradients summed per example, as per-event FTRL
accumulates them). Scoring records each stored value's weight, and the update walks the
values once with them (see ``_step``), so no per-column scratch table is needed.

They are compiled for one signature when this module is imported (about two seconds; cached
on disk, see ``stream_lis.compiled``).

>>> import numpy as np
>>> zn = np.zeros((9, 2))
>>> a = (np.array([0, 1, 2]), np.array([3, 5]), np.array([1.0, 1.0]))
>>> b = empty_block(2)
>>> w_a, w_b = np.empty(2), np.empty(0)
>>> m = ftrl_margin(*a, *b, 0, 2, zn, 0.5, 1.0, 0.0, 0.0, 8, w_a, w_b)
>>> m.tolist()
[0.0, 0.0]
>>> ftrl_update(*a, *b, 0, 2, np.array([-0.5, 0.5]), zn, 0.5, 1.0, 0.0, 0.0, 8, w_a, w_b)
>>> m = ftrl_margin(*a, *b, 0, 2, zn, 0.5, 1.0, 0.0, 0.0, 8, w_a, w_b)
>>> bool(m[0] > 0 > m[1])
True
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..compiled import JIT

_JIT = JIT(__file__)
_I = "int64[::1]"
_F = "float64[::1]"
_BLOCKS = f"{_I}, {_I}, {_F}, {_I}, {_I}, {_F}, int64, int64"
_HYPER = "float64, float64, float64, float64, int64"
#: The FTRL state, one row per coordinate: ``(z, n)`` side by side, so the two values a
#: stored feature value reads share a cache line (the tables are far larger than the cache).
#: Any row stride: a learner of a ``bank`` holds a column of the bank's table.
_ZN = "float64[:, :]"
#: A bank's table: per coordinate, every learner's ``(z, n)`` side by side.
_ZN3 = "float64[:, :, ::1]"


def as_block(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A CSR block in the kernels' types (contiguous int64 / float64; no copy when it is)."""
    return (np.ascontiguousarray(indptr, dtype=np.int64), np.ascontiguousarray(indices, dtype=np.int64),
            np.ascontiguousarray(data, dtype=np.float64))


def empty_block(n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A CSR block of ``n_rows`` rows with no values (the clean learner's second block)."""
    return np.zeros(n_rows + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)


@njit("float64(float64, float64, float64, float64, float64, float64)", **_JIT)
def _weight(z: float, n: float, alpha: float, beta: float, l1: float, l2: float) -> float:
    """FTRL-Proximal's closed-form weight of one coordinate (0 inside the L1 ball)."""
    if abs(z) <= l1:
        return 0.0
    s = l1 if z > 0 else -l1
    return (s - z) / ((beta + math.sqrt(n)) / alpha + l2)


@njit(f"{_F}({_BLOCKS}, {_ZN}, {_HYPER}, {_F}, {_F})", **_JIT)
def ftrl_margin(ip_a, ix_a, v_a, ip_b, ix_b, v_b, r0, r1, zn, alpha, beta, l1, l2, bias, w_a, w_b):  # pragma: no cover
    """Margins (logits) of rows ``[r0, r1)`` of blocks a + b; ``bias`` is the intercept slot.

    Each stored value's weight is written to ``w_a`` / ``w_b`` (parallel to the blocks'
    values): the update that follows steps with these pre-step weights."""
    out = np.empty(r1 - r0)
    wb = -zn[bias, 0] / ((beta + math.sqrt(zn[bias, 1])) / alpha + l2)
    for r in range(r0, r1):
        s = wb
        for k in range(ip_a[r], ip_a[r + 1]):
            c = ix_a[k]
            w = _weight(zn[c, 0], zn[c, 1], alpha, beta, l1, l2)
            w_a[k] = w
            s += v_a[k] * w
        for k in range(ip_b[r], ip_b[r + 1]):
            c = ix_b[k]
            w = _weight(zn[c, 0], zn[c, 1], alpha, beta, l1, l2)
            w_b[k] = w
            s += v_b[k] * w
        out[r - r0] = s
    return out


@njit(f"void({_I}, {_I}, {_F}, int64, int64, {_F}, {_ZN}, float64, {_F})", **_JIT)
def _step(ip, ix, v, r0, r1, g_row, zn, alpha, w):  # pragma: no cover
    # Per stored value, in order: z += g - (sqrt(n + g^2) - sqrt(n)) / alpha * w_pre. For a
    # column repeated in the batch the sqrt terms telescope to sqrt(n_end) - sqrt(n_start),
    # so this is the batch step (gradients summed per column, squared ones per example)
    # without a per-column pass: ``w`` holds the pre-step weights ftrl_margin recorded.
    for r in range(r0, r1):
        g = g_row[r - r0]
        if g == 0.0:
            continue
        for k in range(ip[r], ip[r + 1]):
            c = ix[k]
            gk = v[k] * g
            n0 = zn[c, 1]
            n1 = n0 + gk * gk
            zn[c, 0] += gk - (math.sqrt(n1) - math.sqrt(n0)) / alpha * w[k]
            zn[c, 1] = n1


@njit(f"void({_BLOCKS}, {_F}, {_ZN}, {_HYPER}, {_F}, {_F})", **_JIT)
def ftrl_update(ip_a, ix_a, v_a, ip_b, ix_b, v_b, r0, r1, g_row, zn, alpha, beta, l1, l2, bias,
                w_a, w_b):  # pragma: no cover
    """One FTRL-Proximal step from the log-loss gradients ``g_row`` (p - y) of rows ``[r0, r1)``;
    ``w_a, w_b``: the weights ``ftrl_margin`` recorded for these rows (before any step)."""
    wb = -zn[bias, 0] / ((beta + math.sqrt(zn[bias, 1])) / alpha + l2)
    _step(ip_a, ix_a, v_a, r0, r1, g_row, zn, alpha, w_a)
    _step(ip_b, ix_b, v_b, r0, r1, g_row, zn, alpha, w_b)
    gs = 0.0
    g2 = 0.0
    for r in range(r1 - r0):
        gs += g_row[r]
        g2 += g_row[r] * g_row[r]
    nb = zn[bias, 1] + g2
    zn[bias, 0] += gs - (math.sqrt(nb) - math.sqrt(zn[bias, 1])) / alpha * wb
    zn[bias, 1] = nb


# -- a bank: every learner of an arm in one pass ----------------------------------------------
# The learners of an arm read the same clean block, each in its own table: seven cache misses
# per clean value. A bank keeps the learners' states side by side per coordinate, so one
# clean value costs one or two lines for all of them. Per learner the arithmetic and its
# order are those of ftrl_margin / ftrl_update, so the numbers are the same to the bit.


@njit(f"float64[:, ::1]({_I}, {_I}, {_F}, int64[:, ::1], {_I}, {_F}, int64, int64, {_ZN3}, {_HYPER}, "
      f"float64[:, ::1], {_F})", **_JIT)
def bank_margin(ip_a, ix_a, v_a, ip_b, ix_b, v_b, r0, r1, zn, alpha, beta, l1, l2, bias, w_a, w_b):  # pragma: no cover
    """Margins ``(rows, learners)`` of rows ``[r0, r1)``: block a shared, learner ``j``'s own
    block in ``ip_b[j]`` (offsets into ``ix_b`` / ``v_b``). Weights go to ``w_a[k, j]`` and ``w_b``."""
    n_l = zn.shape[1]
    out = np.empty((r1 - r0, n_l))
    acc = np.empty(n_l)
    for j in range(n_l):
        zb = zn[bias, j]
        acc[j] = -zb[0] / ((beta + math.sqrt(zb[1])) / alpha + l2)
    wb = acc.copy()
    for r in range(r0, r1):
        for j in range(n_l):
            acc[j] = wb[j]
        for k in range(ip_a[r], ip_a[r + 1]):
            c = ix_a[k]
            v = v_a[k]
            for j in range(n_l):
                w = _weight(zn[c, j, 0], zn[c, j, 1], alpha, beta, l1, l2)
                w_a[k, j] = w
                acc[j] += v * w
        for j in range(n_l):
            s = acc[j]
            for k in range(ip_b[j, r], ip_b[j, r + 1]):
                c = ix_b[k]
                w = _weight(zn[c, j, 0], zn[c, j, 1], alpha, beta, l1, l2)
                w_b[k] = w
                s += v_b[k] * w
            out[r - r0, j] = s
    return out


@njit(f"void({_I}, {_I}, {_F}, int64[:, ::1], {_I}, {_F}, int64, int64, float64[:, ::1], {_ZN3}, {_HYPER}, "
      f"float64[:, ::1], {_F})", **_JIT)
def bank_update(ip_a, ix_a, v_a, ip_b, ix_b, v_b, r0, r1, g, zn, alpha, beta, l1, l2, bias,
                w_a, w_b):  # pragma: no cover
    """One FTRL-Proximal step per learner from ``g[row - r0, j]`` (p - y); the weights are
    those ``bank_margin`` recorded for these rows. Per learner, values are stepped in
    ``ftrl_update``'s order (block a, then its own block, then the intercept)."""
    n_l = zn.shape[1]
    for r in range(r0, r1):
        for k in range(ip_a[r], ip_a[r + 1]):
            c = ix_a[k]
            v = v_a[k]
            for j in range(n_l):
                gr = g[r - r0, j]
                if gr == 0.0:
                    continue
                gk = v * gr
                n0 = zn[c, j, 1]
                n1 = n0 + gk * gk
                zn[c, j, 0] += gk - (math.sqrt(n1) - math.sqrt(n0)) / alpha * w_a[k, j]
                zn[c, j, 1] = n1
    for j in range(n_l):
        for r in range(r0, r1):
            gr = g[r - r0, j]
            if gr == 0.0:
                continue
            for k in range(ip_b[j, r], ip_b[j, r + 1]):
                c = ix_b[k]
                gk = v_b[k] * gr
                n0 = zn[c, j, 1]
                n1 = n0 + gk * gk
                zn[c, j, 0] += gk - (math.sqrt(n1) - math.sqrt(n0)) / alpha * w_b[k]
                zn[c, j, 1] = n1
        zb = zn[bias, j]
        wbias = -zb[0] / ((beta + math.sqrt(zb[1])) / alpha + l2)
        gs = 0.0
        g2 = 0.0
        for r in range(r1 - r0):
            gs += g[r, j]
            g2 += g[r, j] * g[r, j]
        nb = zb[1] + g2
        zb[0] += gs - (math.sqrt(nb) - math.sqrt(zb[1])) / alpha * wbias
        zb[1] = nb
