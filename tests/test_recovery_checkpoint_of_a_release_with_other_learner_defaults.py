"""An arm checkpointed by a release whose learners had other defaults resumes on the values it
was built with (its learners cannot switch mid-stream), and the worker says so once, naming
each value that differs from what its config builds now, and ``/metrics`` marks every such arm
(``stream_lis_learner_values_outdated``). A River model says nothing: its ``_get_params`` can
read learned state (``FMClassifier``'s intercept), which is no setting."""

from __future__ import annotations

import logging

import msgspec
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import stream_lis.arms as arms_mod
import stream_lis.evaluator as evaluator_mod
from _helpers import feed, sim_records
from stream_lis.config import load_config
from stream_lis.engine import Engine
from stream_lis.exporter import SnapshotCollector
from stream_lis.learners import make_learner

CFG = {"time.attribution_window": "5m", "time.horizon": "10m", "learner.hash_bits": 12, "learner.batch_size": 64}


def _trained_by_the_former_release(monkeypatch) -> Engine:
    """Learners built as a release with ``alpha`` 0.05 and ``l1`` 1 by default would build them."""
    def former(cfg):
        return make_learner(msgspec.structs.replace(cfg, params={"alpha": 0.05, "l1": 1.0, **cfg.params}))

    monkeypatch.setattr(evaluator_mod, "make_learner", former)
    eng = Engine(load_config(None, CFG))
    feed(eng, sim_records(3_000, seed=2), 500)
    monkeypatch.undo()
    return eng


def _outdated(eng: Engine) -> dict[tuple[str, str], float]:
    """``stream_lis_learner_values_outdated`` by (experiment, arm), as a scrape reads it."""
    reg = CollectorRegistry()
    reg.register(SnapshotCollector(eng.snapshot))
    return {(s.labels["experiment"], s.labels["arm"]): s.value
            for fam in text_string_to_metric_families(generate_latest(reg).decode())
            if fam.name == "stream_lis_learner_values_outdated" for s in fam.samples}


def test_resumed_arms_keep_their_values_and_the_worker_says_which_differ(monkeypatch, caplog):
    eng = _trained_by_the_former_release(monkeypatch)
    monkeypatch.setattr(arms_mod, "_HYPER_REPORTED", set())  # a new process
    keys = eng.armset.keys()
    assert len(keys) >= 2
    fresh, other = Engine(load_config(None, CFG)), Engine(load_config(None, CFG))
    with caplog.at_level(logging.WARNING, logger="stream_lis.arms"):
        for key in keys:
            assert fresh.armset.load_arm(key, eng.armset.dump_arm(key))
        # a Kafka worker's next partition: an ArmSet of its own, in the same process
        assert other.armset.load_arm(keys[0], eng.armset.dump_arm(keys[0]))
    said = [r.getMessage() for r in caplog.records if "resumed with the learner values" in r.getMessage()]
    assert len(said) == 1, said  # once per process, not once per arm or per ArmSet
    assert "alpha 0.05 -> 0.1" in said[0] and "l1 1.0 -> 3.0" in said[0]
    assert "beta" not in said[0]  # only what differs
    for key in keys:
        learners = fresh.armset.arms[key].evaluator.learners.values()
        assert {(m.alpha, m.l1) for m in learners} == {(0.05, 1.0)}
        assert fresh.armset.arms[key].evaluator.stats().learners == eng.armset.arms[key].evaluator.stats().learners
    # every resumed arm is marked, not only the one the log names; arms built now are not
    assert _outdated(fresh) == {k: 1.0 for k in keys}
    assert _outdated(other) == {keys[0]: 1.0}
    assert _outdated(Engine(load_config(None, CFG))) == {}
    new = Engine(load_config(None, CFG))
    feed(new, sim_records(1_000, seed=3), 500)
    assert set(_outdated(new).values()) == {0.0} and len(_outdated(new)) >= 2


@pytest.mark.parametrize("cfg", [CFG, {**CFG, "learner.model": "river.facto.FMClassifier",
                                        "learner.params": {"n_factors": 2}}], ids=["same-values", "river-model"])
def test_an_arm_resumed_on_the_same_values_or_a_river_model_is_not_reported(cfg, monkeypatch, caplog):
    """Nothing differs; and River models report no values (``_get_params`` reads some models'
    learned state: FMClassifier's intercept would differ after any learning)."""
    monkeypatch.setattr(arms_mod, "_HYPER_REPORTED", set())
    eng = Engine(load_config(None, cfg))
    feed(eng, sim_records(3_000, seed=2), 500)
    fresh = Engine(load_config(None, cfg))
    with caplog.at_level(logging.WARNING, logger="stream_lis.arms"):
        for key in eng.armset.keys():
            assert fresh.armset.load_arm(key, eng.armset.dump_arm(key))
    assert not [r for r in caplog.records if "resumed with the learner values" in r.getMessage()]
    assert _outdated(fresh) == {k: 0.0 for k in eng.armset.keys()}
