"""The compiled FTRL loops take the same mini-batch step as FTRL-Proximal written out in numpy.

The reference below is the textbook step, column by column: weights from (z, n) before the
step, per-column gradient sums, per-example squared gradients. Batches repeat columns within
a row and across rows, and split features over two blocks, since those are the cases where
a scatter loop can go wrong.
"""

from __future__ import annotations

import numpy as np
import pytest

from stream_lis.features import Hashed
from stream_lis.learners import FeatureBatch, FTRLLogisticRegression
from stream_lis.learners.kernels import empty_block, ftrl_margin, ftrl_update

HYPER = dict(alpha=0.3, beta=1.0, l1=0.5, l2=0.1)


def reference_weights(z, n, alpha, beta, l1, l2):
    w = (np.sign(z) * l1 - z) / ((beta + np.sqrt(n)) / alpha + l2)
    w[np.abs(z) <= l1] = 0.0
    return w


def reference_step(X: Hashed, g_row, z, n, alpha, beta, l1, l2):
    """One mini-batch FTRL-Proximal step on dense copies of the tables (bias excluded)."""
    w = reference_weights(z, n, alpha, beta, l1, l2)
    rows = np.repeat(np.arange(X.n_rows), np.diff(X.indptr))
    g_val = X.data * g_row[rows]
    G = np.bincount(X.indices, weights=g_val, minlength=len(z))
    G2 = np.bincount(X.indices, weights=g_val * g_val, minlength=len(z))
    n_new = n + G2
    z = z + G - (np.sqrt(n_new) - np.sqrt(n)) / alpha * w
    return z, n_new


def random_csr(rng, rows, cols, per_row):
    lens = rng.integers(0, per_row + 1, size=rows)
    indptr = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(lens, out=indptr[1:])
    idx = rng.integers(0, cols, size=indptr[-1]).astype(np.int64)  # repeats within and across rows
    return Hashed(indptr, idx, rng.normal(size=indptr[-1]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_step_equals_the_numpy_reference_over_two_blocks(seed):
    rng = np.random.default_rng(seed)
    size = 64
    a, b = random_csr(rng, 40, size, 6), random_csr(rng, 40, size, 3)
    z, n = rng.normal(size=size + 1), rng.uniform(0, 4, size=size + 1)
    h = (HYPER["alpha"], HYPER["beta"], HYPER["l1"], HYPER["l2"], size)

    w_a, w_b = np.empty(len(a.indices)), np.empty(len(b.indices))
    margin = ftrl_margin(*a, *b, 0, 40, np.column_stack([z, n]), *h, w_a, w_b)
    joined = a.concat(b)
    w = reference_weights(z[:size], n[:size], *h[:4])
    wb = -z[size] / ((HYPER["beta"] + np.sqrt(n[size])) / HYPER["alpha"] + HYPER["l2"])
    rows = np.repeat(np.arange(40), np.diff(joined.indptr))
    expected = np.bincount(rows, weights=joined.data * w[joined.indices], minlength=40) + wb
    np.testing.assert_allclose(margin, expected, rtol=1e-12, atol=1e-12)

    g = rng.normal(size=40)
    z_ref, n_ref = reference_step(joined, g, z[:size], n[:size], *h[:4])
    zn = np.column_stack([z, n])  # the kernels' layout: (z, n) per coordinate
    ftrl_update(*a, *b, 0, 40, g, zn, *h, w_a, w_b)
    zk, nk = zn[:, 0], zn[:, 1]
    np.testing.assert_allclose(zk[:size], z_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(nk[:size], n_ref, rtol=1e-12)


def test_a_row_range_steps_only_on_those_rows():
    rng = np.random.default_rng(5)
    a = random_csr(rng, 30, 32, 5)
    b = Hashed(*empty_block(30))
    zn = np.zeros((33, 2))
    z, n = zn[:, 0], zn[:, 1]
    g = rng.normal(size=10)
    w_a, w_b = np.empty(len(a.indices)), np.empty(0)
    ftrl_margin(*a, *b, 10, 20, zn, 0.3, 1.0, 0.0, 0.0, 32, w_a, w_b)
    ftrl_update(*a, *b, 10, 20, g, zn, 0.3, 1.0, 0.0, 0.0, 32, w_a, w_b)
    piece = Hashed(a.indptr[10:21] - a.indptr[10], a.indices[a.indptr[10]:a.indptr[20]], a.data[a.indptr[10]:a.indptr[20]])
    z_ref, n_ref = reference_step(piece, g, np.zeros(32), np.zeros(32), 0.3, 1.0, 0.0, 0.0)
    np.testing.assert_allclose(z[:32], z_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(n[:32], n_ref, rtol=1e-12)


def test_two_block_batch_learns_what_the_concatenated_batch_learns():
    """A leaky learner reads the shared clean block plus its own: same model as one joined block."""
    rng = np.random.default_rng(9)
    a, b = random_csr(rng, 200, 1 << 10, 5), random_csr(rng, 200, 1 << 10, 2)
    y = rng.integers(0, 2, size=200).astype(np.float64)
    base = FeatureBatch(n=200, hash_fn=lambda bits: a)
    two = base.plus(lambda bits: b, rows_fn=lambda: [])
    one = FeatureBatch(n=200, hash_fn=lambda bits: a.concat(b))
    m2, m1 = FTRLLogisticRegression(bits=10), FTRLLogisticRegression(bits=10)
    for m, batch in ((m2, two), (m1, one)):
        m.predict_batch(batch)
        m.learn_batch(batch, y)  # young model: learnt in warm-up pieces
    np.testing.assert_allclose(m2.z, m1.z, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m2.predict_batch(two), m1.predict_batch(one), rtol=1e-10)
