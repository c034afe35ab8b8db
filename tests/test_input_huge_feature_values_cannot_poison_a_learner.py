"""One record carrying a huge but finite feature value (``dense``, ``embedding``, a side
table's vector) used to be accepted: the learners' sums of squared values overflowed, the
arm's scores became NaN and the run stopped with a traceback at the AUC update, its results
lost (a Kafka worker would have crash-looped on the record). Feature values are now bounded
on input (``events.MAX_ABS_VALUE``, rejected as ``out_of_range``, dead-lettered), so the
stream's figures are those it has without the record; and a learner that still gives
non-finite scores (a diverging River model) is scored 0.5 and said, not a crash."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import stream_lis.evaluator as evaluator_mod
from _helpers import feed, sim_records
from stream_lis.config import load_config
from stream_lis.embedding_table import EmbeddingTable
from stream_lis.engine import Engine
from stream_lis.events import MAX_ABS_VALUE, decode_event
from stream_lis.probes.external import ExternalProbe

CFG = {"time.attribution_window": "5m", "time.horizon": "10m", "learner.hash_bits": 12, "learner.batch_size": 64,
       "evaluation.window_size": 500}


def _impression(**fields) -> bytes:
    return json.dumps({"type": "impression", "impression_id": "i1", "ts": 1_000, "user_id": "u", "item_id": "a",
                       "experiment": "e", "arm": "c", **fields}).encode()


@pytest.mark.parametrize("fields", [{"dense": {"x": 1e200}}, {"dense": {"x": -1e155}},
                                    {"embedding": [0.1, 1e13]}, {"embedding": [-2e12]}],
                         ids=["dense-1e200", "dense--1e155", "embedding-1e13", "embedding--2e12"])
def test_a_feature_value_beyond_the_bound_is_out_of_range(fields):
    got = decode_event(_impression(**fields))
    assert got.reason == "out_of_range", got
    assert "1000000000000.0" in got.detail


def test_values_at_the_bound_are_accepted():
    ev = decode_event(_impression(dense={"x": MAX_ABS_VALUE, "y": -MAX_ABS_VALUE}, embedding=[MAX_ABS_VALUE, 0.5]))
    assert ev.dense == {"x": MAX_ABS_VALUE, "y": -MAX_ABS_VALUE} and ev.embedding == [MAX_ABS_VALUE, 0.5]


def _figures(eng: Engine) -> list[tuple]:
    return [(a.arm, a.labelled, {k: (v.auc_window, v.auc_cumulative) for k, v in a.learners.items()},
             {k: v.value for k, v in a.lis.items()}) for a in eng.snapshot().arms]


def test_a_stream_with_poison_values_gives_the_figures_of_the_stream_without_them():
    clean = sim_records(4_000, seed=5, embedding_dims=4)
    poisoned = list(clean)
    at = [k for k, r in enumerate(clean) if json.loads(r)["type"] == "impression"]
    chosen = (at[700], at[1_900])
    for k, field in zip(chosen, ("embedding", "dense")):
        ev = json.loads(poisoned[k])
        if field == "embedding":
            ev["embedding"][0] = 1e200
        else:
            ev["dense"] = {"x": -1e200}
        poisoned[k] = json.dumps(ev).encode()
    without = [r for k, r in enumerate(clean) if k not in chosen]
    a, b = Engine(load_config(None, CFG)), Engine(load_config(None, CFG))
    feed(a, poisoned, 500)
    feed(b, without, 500)
    a.flush()
    b.flush()
    assert a.counters.invalid - b.counters.invalid == {"out_of_range": 2}  # besides the stream's late events
    assert _figures(a) == _figures(b)
    for arm in a.snapshot().arms:
        assert all(np.isfinite([v.auc_window, v.auc_cumulative]).all() for v in arm.learners.values() if v.auc_window)


def test_side_tables_refuse_vectors_beyond_the_bound():
    emb = EmbeddingTable()
    assert emb.update(json.dumps({"arm": "c", "item_id": "a", "vector": [0.5, 1e200]}).encode()) == "out_of_range"
    assert emb.update(json.dumps({"arm": "c", "item_id": "a", "vector": [0.5, 1e12]}).encode()) is None
    ext = ExternalProbe()
    assert ext.update(json.dumps({"item_id": "a", "vector": [-1e13]}).encode()) == "out_of_range"
    assert ext.update(json.dumps({"item_id": "a", "vector": [3.0]}).encode()) is None


def test_a_learner_giving_nan_scores_is_scored_half_and_said_once(monkeypatch, caplog):
    """A River model (the per-event path) that diverges: its NaN scores become 0.5."""
    monkeypatch.setattr(evaluator_mod, "_UNSCORABLE_SAID", set())
    cfg = load_config(None, {**CFG, "learner.model": "river.linear_model.LogisticRegression"})
    eng = Engine(cfg)
    records = sim_records(4_000, seed=5)
    feed(eng, records[:1_000], 300)
    arm = eng.armset.arms[eng.armset.keys()[0]]
    ev = arm.evaluator
    col = ev.learner_names.index("clean")
    real = ev.learners["clean"].predict_batch
    monkeypatch.setattr(ev.learners["clean"], "predict_batch", lambda batch: np.full(len(real(batch)), np.nan))
    with caplog.at_level(logging.ERROR, logger="stream_lis.evaluator"):
        feed(eng, records[1_000:], 300)
        eng.flush()
    said = [r.getMessage() for r in caplog.records if "non-finite scores" in r.getMessage()]
    assert len(said) == 1 and "learner clean" in said[0], said
    assert ev.positives + ev.negatives > 1_000  # the window (500) holds only examples scored after the break
    _, scores = ev.window.view()
    assert len(scores) == 500 and np.isfinite(scores).all()
    assert (scores[:, col] == 0.5).all()  # every score since the learner broke: the window is newer
    assert ev.stats().learners["clean"].auc_window == 0.5  # all tied: no information
