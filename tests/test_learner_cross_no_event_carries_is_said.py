"""A `learner.crosses` pair naming a feature no event carries (a misspelt name: the config
cannot know the producers' feature names) is said once in the log, with the names the events
do carry; a cross that fires, or one of user and item, is not."""

from __future__ import annotations

import logging

from stream_lis import evaluator
from stream_lis.config import load_config
from stream_lis.engine import Engine
from stream_lis.runtime.sources import simulator_records
from stream_lis.simulator import SimulatorConfig


def test_a_cross_of_a_feature_no_event_carries_is_said_once(caplog, monkeypatch):
    monkeypatch.setattr(evaluator, "_CROSSES_SAID", set())
    cfg = load_config(None, {"learner.crosses": [["devise", "item"], ["device", "item"], ["user", "item"]],
                             "probes.enabled": ["noise"]})
    eng = Engine(cfg)
    with caplog.at_level(logging.WARNING, logger="stream_lis.evaluator"):
        eng.process_records(list(simulator_records(SimulatorConfig(impressions=6_000, seed=3))))
        eng.flush()
    said = [r.getMessage() for r in caplog.records if "learner.crosses" in r.getMessage()]
    assert len(said) == 1, said  # one cross, said once for both arms and every chunk
    assert "['devise', 'item']" in said[0] and "device, position, segment" in said[0]
    assert all(a.labelled > 1000 for a in eng.snapshot().arms)  # the arms went on
