"""Tests for stream_lis.stats.auc: exact AUC, DeLong, bootstrap, BinnedAUC."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import norm

from stream_lis.stats import (
    BinnedAUC,
    auc,
    bootstrap_paired_diff,
    delong_many,
    delong_paired,
    delong_single,
)

# --------------------------------------------------------------------------
# independent O(P*N) references
# --------------------------------------------------------------------------


def _psi(x: float, y: float) -> Fraction:
    """Kernel of the Mann-Whitney statistic: 1 if pos > neg, 1/2 on ties."""
    return Fraction(1) if x > y else Fraction(1, 2) if x == y else Fraction(0)


def _brute_auc(labels, scores) -> float:
    pos = [s for lab, s in zip(labels, scores, strict=True) if lab]
    neg = [s for lab, s in zip(labels, scores, strict=True) if not lab]
    total = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in pos for y in neg)
    return total / (len(pos) * len(neg))


def _brute_delong(labels, scores_a, scores_b):
    """Exact-rational DeLong from the definition (DeLong et al. 1988).

    Structural components by explicit pair loops, covariances by explicit
    sums, all in Fractions, so nothing is shared with the midrank code.
    Returns (auc_a, auc_b, var_a, var_b, var_diff) as Fractions.
    """
    idx_pos = [i for i, lab in enumerate(labels) if lab]
    idx_neg = [i for i, lab in enumerate(labels) if not lab]
    m, n = len(idx_pos), len(idx_neg)

    def comps(s):
        v10 = [sum(_psi(s[i], s[j]) for j in idx_neg) / n for i in idx_pos]
        v01 = [sum(_psi(s[i], s[j]) for i in idx_pos) / m for j in idx_neg]
        return sum(v10) / m, v10, v01

    def cov(u, v):
        mu, mv = sum(u) / len(u), sum(v) / len(v)
        return sum((a - mu) * (b - mv) for a, b in zip(u, v, strict=True)) / (len(u) - 1)

    auc_a, a10, a01 = comps(scores_a)
    auc_b, b10, b01 = comps(scores_b)
    s_aa = cov(a10, a10) / m + cov(a01, a01) / n
    s_bb = cov(b10, b10) / m + cov(b01, b01) / n
    s_ab = cov(a10, b10) / m + cov(a01, b01) / n
    return auc_a, auc_b, s_aa, s_bb, s_aa + s_bb - 2 * s_ab


def _correlated_binormal(rng, m, n, mu_a, mu_b, rho):
    """Two scorers; per class the latent scores are N(mu, 1) with corr rho.

    Under this model AUC = Phi(mu / sqrt(2)) exactly, which gives a known
    true difference to check interval coverage against.
    """
    cov = [[1.0, rho], [rho, 1.0]]
    pos = rng.multivariate_normal([mu_a, mu_b], cov, size=m)
    neg = rng.multivariate_normal([0.0, 0.0], cov, size=n)
    labels = np.r_[np.ones(m, dtype=bool), np.zeros(n, dtype=bool)]
    scores = np.vstack([pos, neg])
    return labels, scores[:, 0], scores[:, 1]


# --------------------------------------------------------------------------
# auc
# --------------------------------------------------------------------------


def test_auc_equals_brute_force_pair_count_on_random_data_with_ties():
    rng = np.random.default_rng(123)
    for _ in range(20):
        size = int(rng.integers(2, 120))
        labels = rng.integers(0, 2, size=size)
        # Few distinct values -> many ties, within and across classes.
        scores = rng.integers(0, 6, size=size) / 5.0
        if labels.min() == labels.max():
            continue
        assert auc(labels, scores) == pytest.approx(_brute_auc(labels, scores), abs=1e-12)


def test_auc_accepts_bool_and_int_labels_identically():
    rng = np.random.default_rng(0)
    y = rng.random(50) < 0.4
    s = rng.random(50)
    assert auc(y, s) == auc(y.astype(int), s)


def test_auc_is_nan_when_only_one_class_present():
    assert math.isnan(auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(auc([0, 0], [0.1, 0.2]))
    assert math.isnan(auc([], []))


def test_auc_rejects_non_binary_labels_instead_of_guessing():
    with pytest.raises(ValueError):
        auc([-1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError):
        auc([0, 1], [0.1, float("nan")])


# --------------------------------------------------------------------------
# DeLong
# --------------------------------------------------------------------------


def test_fast_midranks_equal_scipy_rankdata_including_ties_and_edge_shapes():
    from scipy.stats import rankdata

    from stream_lis.stats.auc import _midranks

    rng = np.random.default_rng(12)
    for shape in [(6, 1000), (1, 7), (3, 1), (2, 0)]:
        for x in (rng.random(shape), np.round(rng.random(shape), 1)):
            np.testing.assert_array_equal(_midranks(x), rankdata(x, axis=1))


def test_delong_matches_known_reference_value():
    # Hand-made, with ties inside and across classes for both scorers.
    labels = [1, 1, 1, 1, 0, 0, 0, 0, 0]
    a = [0.9, 0.7, 0.7, 0.3, 0.7, 0.2, 0.3, 0.1, 0.5]
    b = [0.8, 0.8, 0.4, 0.6, 0.5, 0.6, 0.1, 0.4, 0.2]
    auc_a, auc_b, var_a, var_b, var_d = _brute_delong(labels, a, b)
    # Pinned by hand-counting pairs (a: 5+4.5+4.5+2.5, b: 5+5+2.5+4.5 of 20).
    assert (auc_a, auc_b) == (Fraction(33, 40), Fraction(17, 20))

    r = delong_paired(labels, a, b)
    assert r.auc_a == pytest.approx(float(auc_a), abs=1e-12)
    assert r.auc_b == pytest.approx(float(auc_b), abs=1e-12)
    assert r.diff == pytest.approx(float(auc_b - auc_a), abs=1e-12)
    assert r.se == pytest.approx(math.sqrt(var_d), rel=1e-10)
    z = norm.ppf(0.975)
    assert r.ci_low == pytest.approx(r.diff - z * r.se, rel=1e-10)
    assert r.ci_high == pytest.approx(r.diff + z * r.se, rel=1e-10)
    assert (r.n_pos, r.n_neg) == (4, 5)

    single_auc, single_se, _, _ = delong_single(labels, a)
    assert single_auc == pytest.approx(float(auc_a), abs=1e-12)
    assert single_se == pytest.approx(math.sqrt(var_a), rel=1e-10)
    assert delong_single(labels, b)[1] == pytest.approx(math.sqrt(var_b), rel=1e-10)


def test_delong_paired_ci_agrees_with_bootstrap():
    rng = np.random.default_rng(7)
    labels, a, b = _correlated_binormal(rng, m=700, n=1300, mu_a=0.9, mu_b=1.1, rho=0.75)
    r = delong_paired(labels, a, b)
    se_bs, lo_bs, hi_bs = bootstrap_paired_diff(labels, a, b, n_boot=2000, seed=11)

    assert abs(r.se - se_bs) / se_bs < 0.15
    overlap = min(r.ci_high, hi_bs) - max(r.ci_low, lo_bs)
    union = max(r.ci_high, hi_bs) - min(r.ci_low, lo_bs)
    assert overlap / union > 0.8


def test_delong_ci_covers_true_difference_at_nominal_rate_in_binormal_simulation():
    mu_a, mu_b, rho = 1.0, 1.3, 0.6
    true_diff = norm.cdf(mu_b / math.sqrt(2)) - norm.cdf(mu_a / math.sqrt(2))
    rng = np.random.default_rng(2024)
    reps, covered = 200, 0
    for _ in range(reps):
        labels, a, b = _correlated_binormal(rng, m=150, n=250, mu_a=mu_a, mu_b=mu_b, rho=rho)
        r = delong_paired(labels, a, b)
        covered += r.ci_low <= true_diff <= r.ci_high
    assert 0.90 <= covered / reps <= 0.99


def test_delong_paired_is_antisymmetric_in_the_two_scorers():
    rng = np.random.default_rng(3)
    labels, a, b = _correlated_binormal(rng, m=80, n=120, mu_a=0.5, mu_b=1.0, rho=0.5)
    ab, ba = delong_paired(labels, a, b), delong_paired(labels, b, a)
    assert ab.diff == pytest.approx(-ba.diff)
    assert ab.se == pytest.approx(ba.se)


def test_delong_degenerate_one_class_gives_nan():
    r = delong_paired([1, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
    assert all(math.isnan(v) for v in (r.auc_a, r.auc_b, r.diff, r.se, r.ci_low, r.ci_high))
    assert (r.n_pos, r.n_neg) == (3, 0)
    assert all(math.isnan(v) for v in delong_single([0, 0], [0.1, 0.2]))

    # A single positive: AUCs are defined, the variance is not.
    r = delong_paired([1, 0, 0, 0], [0.9, 0.1, 0.5, 0.95], [0.9, 0.1, 0.5, 0.2])
    assert r.auc_a == pytest.approx(2 / 3)
    assert r.auc_b == 1.0
    assert r.diff == pytest.approx(1 / 3)
    assert math.isnan(r.se) and math.isnan(r.ci_low) and math.isnan(r.ci_high)
    a, se, lo, hi = delong_single([1, 0, 0, 0], [0.9, 0.1, 0.5, 0.95])
    assert a == pytest.approx(2 / 3) and math.isnan(se) and math.isnan(lo) and math.isnan(hi)


def test_identical_scores_give_zero_variance():
    rng = np.random.default_rng(5)
    y = rng.random(500) < 0.3
    s = rng.random(500)
    for other in (s, s**3):  # identical, and same ranking on another scale
        r = delong_paired(y, s, other)
        assert r.diff == 0.0
        assert r.se == 0.0
        assert r.ci_low == r.ci_high == r.diff


def test_delong_many_matches_pairwise():
    rng = np.random.default_rng(9)
    n, k = 400, 5
    y = rng.random(n) < 0.35
    base = rng.normal(size=n) + y
    scores = np.round(base[:, None] + rng.normal(scale=0.8, size=(n, k)), 1)  # ties
    for ref in (0, 2, -1):
        many = delong_many(y, scores, reference=ref, level=0.9)
        assert len(many) == k
        ref_col = ref % k
        for j, r in enumerate(many):
            p = delong_paired(y, scores[:, ref_col], scores[:, j], level=0.9)
            for field in ("auc_a", "auc_b", "diff", "se", "ci_low", "ci_high"):
                assert getattr(r, field) == pytest.approx(getattr(p, field), abs=1e-12)
            assert (r.n_pos, r.n_neg) == (p.n_pos, p.n_neg)
        assert many[ref_col].diff == 0.0 and many[ref_col].se == 0.0


def test_delong_many_rejects_bad_reference_and_level():
    y, scores = [0, 1, 0, 1], np.random.default_rng(0).random((4, 3))
    with pytest.raises(IndexError):
        delong_many(y, scores, reference=3)
    with pytest.raises(ValueError):
        delong_many(y, scores, level=1.0)


def test_bootstrap_is_reproducible_for_a_fixed_seed():
    rng = np.random.default_rng(1)
    labels, a, b = _correlated_binormal(rng, m=60, n=90, mu_a=0.5, mu_b=0.8, rho=0.5)
    assert bootstrap_paired_diff(labels, a, b, n_boot=300, seed=4) == bootstrap_paired_diff(
        labels, a, b, n_boot=300, seed=4
    )


def test_bootstrap_replicate_auc_matches_exact_auc_of_the_resample():
    # The bootstrap computes replicate AUCs from resample counts without
    # re-sorting; check that trick against auc() on an explicit resample.
    from stream_lis.stats.auc import _weighted_auc_rows

    rng = np.random.default_rng(8)
    pos = np.round(rng.normal(1, 1, 40), 1)
    neg = np.round(rng.normal(0, 1, 60), 1)
    ip, ineg = rng.integers(0, 40, 40), rng.integers(0, 60, 60)
    w_pos = np.bincount(ip, minlength=40)[None, :]
    w_neg = np.bincount(ineg, minlength=60)[None, :]
    got = _weighted_auc_rows(pos, neg, w_pos, w_neg)[0]
    labels = np.r_[np.ones(40, bool), np.zeros(60, bool)]
    assert got == pytest.approx(auc(labels, np.r_[pos[ip], neg[ineg]]), abs=1e-12)


# --------------------------------------------------------------------------
# BinnedAUC
# --------------------------------------------------------------------------


def _ctr_like(rng, size):
    """Calibrated CTR-like stream: p in ~[0.02, 0.2], label ~ Bernoulli(p)."""
    logit = rng.uniform(math.log(0.02 / 0.98), math.log(0.2 / 0.8), size=size)
    p = 1.0 / (1.0 + np.exp(-logit))
    return rng.random(size) < p, p


def test_binned_auc_error_within_stated_bound():
    rng = np.random.default_rng(42)
    y, p = _ctr_like(rng, 200_000)
    acc = BinnedAUC()
    for chunk in np.array_split(np.arange(y.size), 7):  # streamed in batches
        acc.update_many(y[chunk], p[chunk])
    exact = auc(y, p)
    assert acc.n_pos == int(y.sum()) and acc.n_neg == int((~y).sum())
    assert abs(acc.auc() - exact) <= acc.error_bound()
    assert acc.error_bound() < 0.001


def test_binned_auc_bound_is_attained_when_every_shared_bin_pair_is_misordered():
    acc = BinnedAUC(n_bins=4)
    # All four pairs share one bin and every negative outscores every positive.
    y = [1, 1, 0, 0]
    p = [0.50, 0.51, 0.52, 0.53]
    acc.update_many(y, p)
    assert auc(y, p) == 0.0
    assert acc.auc() == 0.5
    assert abs(acc.auc() - auc(y, p)) == acc.error_bound()


def test_binned_auc_handles_extreme_probabilities_in_edge_bins():
    acc = BinnedAUC()
    acc.update_many([0, 1, 0, 1], [0.0, 1.0, 1e-300, 1.0 - 1e-17])
    assert acc.auc() == pytest.approx(1.0 - acc.error_bound())
    with pytest.raises(ValueError):
        acc.update_many([1], [1.5])
    with pytest.raises(ValueError):
        acc.update_one(1, float("nan"))


def test_binned_auc_update_one_matches_update_many():
    rng = np.random.default_rng(6)
    y, p = _ctr_like(rng, 500)
    bulk, single = BinnedAUC(), BinnedAUC()
    bulk.update_many(y, p)
    for label, score in zip(y.tolist(), p.tolist(), strict=True):
        single.update_one(label, score)
    for key in ("pos_idx", "pos_cnt", "neg_idx", "neg_cnt"):
        np.testing.assert_array_equal(bulk.to_state()[key], single.to_state()[key])
    assert bulk.auc() == single.auc()


def test_binned_auc_state_roundtrip_and_merge():
    rng = np.random.default_rng(10)
    y, p = _ctr_like(rng, 20_000)
    whole, left, right = BinnedAUC(), BinnedAUC(), BinnedAUC()
    whole.update_many(y, p)
    left.update_many(y[:7_000], p[:7_000])
    right.update_many(y[7_000:], p[7_000:])

    # Merge of partitions equals one pass over everything.
    merged = left.merge(right)
    assert merged is left
    assert (merged.n_pos, merged.n_neg) == (whole.n_pos, whole.n_neg)
    assert merged.auc() == whole.auc()
    assert merged.error_bound() == whole.error_bound()

    # Sparse state survives a JSON round trip (lists) and raw numpy arrays.
    state = whole.to_state()
    assert state["pos_idx"].size < whole.n_bins // 4  # actually sparse
    as_json = json.loads(
        json.dumps({k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in state.items()})
    )
    for restored in (BinnedAUC.from_state(state), BinnedAUC.from_state(as_json)):
        assert (restored.n_pos, restored.n_neg) == (whole.n_pos, whole.n_neg)
        assert restored.auc() == whole.auc()
        assert restored.error_bound() == whole.error_bound()
        for key in ("pos_idx", "pos_cnt", "neg_idx", "neg_cnt"):
            np.testing.assert_array_equal(restored.to_state()[key], state[key])

    # Restored accumulators keep accumulating.
    restored = BinnedAUC.from_state(as_json)
    restored.update_one(1, 0.5)
    assert restored.n_pos == whole.n_pos + 1


def test_binned_auc_refuses_to_merge_or_restore_inconsistent_bins():
    with pytest.raises(ValueError):
        BinnedAUC(n_bins=1024).merge(BinnedAUC(n_bins=2048))
    with pytest.raises(ValueError):
        BinnedAUC().merge(BinnedAUC(lo_hi=8.0))
    bad = BinnedAUC(n_bins=8).to_state()
    bad.update(pos_idx=[8], pos_cnt=[1])
    with pytest.raises(ValueError):
        BinnedAUC.from_state(bad)


def test_binned_auc_is_nan_until_both_classes_seen():
    acc = BinnedAUC()
    assert math.isnan(acc.auc()) and math.isnan(acc.error_bound())
    acc.update_one(1, 0.3)
    assert math.isnan(acc.auc())
    acc.update_one(0, 0.1)
    assert acc.auc() == 1.0
