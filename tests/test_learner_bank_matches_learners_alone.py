"""An arm's FTRL learners in one bank compute what each computes alone, to the bit.

The bank interleaves the learners' tables and scores and trains them in one pass; nothing in
the numbers may change: predictions, the state a checkpoint keeps, the warm-up pieces of young
learners, a restore (the learners come back with their own tables and are banked again), and
the whole engine's figures against the same engine with every learner on its own.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import stream_lis.evaluator as evaluator_mod
from _helpers import sim_records, small_cfg
from stream_lis.engine import Engine
from stream_lis.features import Hashed
from stream_lis.learners import FeatureBatch, FMClassifier, FTRLLogisticRegression
from stream_lis.learners.bank import FTRLBank

HYPER = dict(bits=8, alpha=0.3, beta=1.0, l1=0.2, l2=0.1)  # 256 columns: many collisions


def _csr(rng: np.random.Generator, rows: int, per_row: int) -> Hashed:
    lens = rng.integers(0, per_row + 1, size=rows)
    indptr = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(lens, out=indptr[1:])
    return Hashed(indptr, rng.integers(0, 256, size=indptr[-1]).astype(np.int64), rng.normal(size=indptr[-1]))


def _batches(rng: np.random.Generator, rows: int) -> list[FeatureBatch]:
    """A clean batch and three learners' batches on it: none, a small and a wide extra block."""
    clean = _csr(rng, rows, 6)
    base = FeatureBatch(n=rows, hash_fn=lambda bits: clean, rows_fn=list)
    extras = [_csr(rng, rows, 2), _csr(rng, rows, 9), Hashed(np.zeros(rows + 1, dtype=np.int64),
                                                             np.zeros(0, dtype=np.int64), np.zeros(0))]
    return [base] + [base.plus(lambda bits, x=x: x, list) for x in extras]


@pytest.mark.parametrize("warmup", [0.125, 0.0])
def test_bank_predicts_and_learns_as_each_learner_alone(warmup):
    rng = np.random.default_rng(3)
    alone = [FTRLLogisticRegression(**HYPER, warmup=warmup) for _ in range(4)]
    banked = [FTRLLogisticRegression(**HYPER, warmup=warmup) for _ in range(4)]
    bank = FTRLBank.of(banked)
    assert bank is not None and bank.holds(banked)
    for rows in (1, 3, 40, 200, 7, 512):  # young learners learn the larger batches in pieces
        batches = _batches(rng, rows)
        y = (rng.random(rows) < 0.3).astype(np.float64)
        p, step = bank.predict(batches)
        expect = np.column_stack([m.predict_batch(b) for m, b in zip(alone, batches)])
        assert np.array_equal(p, expect)
        bank.learn(step, y)
        for m, b in zip(alone, batches):
            m.learn_batch(b, y)
    for a, b in zip(alone, banked):
        assert a.seen == b.seen
        sa, sb = a.state(), b.state()  # what a checkpoint keeps
        assert np.array_equal(sa["idx"], sb["idx"]) and np.array_equal(sa["z"], sb["z"])
        assert np.array_equal(sa["n"], sb["n"]) and len(sa["idx"]) > 0
        assert np.array_equal(a.zn, b.zn)


def test_a_banked_learner_is_still_a_whole_river_classifier():
    ms = [FTRLLogisticRegression(bits=10, alpha=0.5) for _ in range(2)]
    FTRLBank.of(ms)
    for _ in range(50):
        ms[1].learn_one({"good": 1.0}, True)
        ms[1].learn_one({"bad": 1.0}, False)
    assert ms[1].predict_proba_one({"good": 1.0})[True] > 0.7
    assert ms[0].predict_proba_one({"good": 1.0})[True] == 0.5  # its neighbour's column is untouched
    restored = pickle.loads(pickle.dumps(ms[1]))
    assert restored.zn.base is None and np.array_equal(restored.zn, ms[1].zn)


@pytest.mark.parametrize("learners", [
    lambda: [FTRLLogisticRegression(bits=8)],  # one learner: nothing to share
    lambda: [FTRLLogisticRegression(bits=8), FMClassifier(bits=8)],
    lambda: [FTRLLogisticRegression(bits=8), FTRLLogisticRegression(bits=9)],
    lambda: [FTRLLogisticRegression(bits=8), FTRLLogisticRegression(bits=8, alpha=0.2)],
])
def test_learners_that_cannot_share_a_table_are_not_banked(learners):
    assert FTRLBank.of(learners()) is None


def test_batches_of_other_bases_are_refused():
    rng = np.random.default_rng(0)
    one, other = _batches(rng, 5), _batches(rng, 5)
    bank = FTRLBank.of([FTRLLogisticRegression(**HYPER) for _ in range(2)])
    with pytest.raises(ValueError, match="share their base block"):
        bank.predict([one[1], other[1]])


def _cfg():
    return small_cfg("5m", "10m", **{"probes.enabled": ["next_click", "future_item", "noise"],
                                     "learner.batch_size": 64, "learner.hash_bits": 12})


def test_an_arm_restored_from_its_checkpoint_goes_on_as_if_never_stopped():
    records = sim_records(6_000, seed=5)
    eng = Engine(_cfg())
    eng.process_records(records[:3_000])
    evaluators = list(eng.arms.values())
    assert evaluators and all(isinstance(e._bank(), FTRLBank) for e in evaluators)
    blobs = {k: eng.armset.dump_arm(k) for k in eng.arms}  # the checkpoint of each arm
    restored = copy.deepcopy(eng)  # the joiner and clock as they were; the arms from their blobs
    for k, blob in blobs.items():
        assert restored.armset.load_arm(k, blob)
        # Not the bank (the learners' tables whole): each learner's own, banked again on the next chunk.
        assert "_banked" not in restored.arms[k].__dict__
    for e in (eng, restored):
        e.process_records(records[3_000:])
        e.flush()
    assert [e.stats() for e in restored.arms.values()] == [e.stats() for e in eng.arms.values()]
    assert all(e._bank() is not None for e in restored.arms.values())


def test_engine_figures_are_the_same_with_and_without_the_bank(monkeypatch):
    records = sim_records(8_000, seed=9)

    def figures() -> list:
        eng = Engine(_cfg())
        eng.process_records(records)
        eng.flush()
        return [(a.arm, a.learners, a.lis, a.ais) for a in eng.snapshot().arms]

    banked = figures()
    monkeypatch.setattr(evaluator_mod.FTRLBank, "of", classmethod(lambda cls, learners, fresh=False: None))
    assert figures() == banked
    assert len(banked) == 2 and all(len(learners) >= 3 for _, learners, _, _ in banked)
