"""Memory bounds shed load, count it, log it, and keep every container flat on a long stream."""

from __future__ import annotations

import logging

from _helpers import feed, imp, sim_records, small_cfg
from stream_lis.config import load_config
from stream_lis.engine import Engine
from stream_lis.exporter import pipeline_metrics
from stream_lis.overload import WARNINGS

FAST = {"time.attribution_window": "5m", "time.horizon": "10m", "learner.batch_size": 64,
        "learner.hash_bits": 12, "evaluation.window_size": 500}


def _shed_metric(eng: Engine) -> dict[str, float]:
    fam = next(m for m in pipeline_metrics(eng.snapshot()) if m.name == "stream_lis_shed")
    return {s.labels["bound"]: s.value for s in fam.samples if s.name.endswith("_total")}


def test_a_stalled_horizon_sheds_the_oldest_examples_and_says_so(caplog):
    # A horizon far longer than the stream: nothing is ever released, so without the bound
    # every labelled example would be held.
    eng = Engine(load_config(None, {**FAST, "time.horizon": "30d", "time.experiment_idle_timeout": "30d", "limits.max_held_examples": 300}))
    records = sim_records(3_000, seed=3)
    with caplog.at_level(logging.WARNING, logger="stream_lis.overload"):
        WARNINGS._last.clear()
        feed(eng, records, 500)
    held = {k: len(a.horizon) for k, a in eng.pipelines.items()}
    assert held and all(n <= 300 for n in held.values())
    shed = _shed_metric(eng)["lookahead"]
    labelled = sum(len(a.horizon) for a in eng.pipelines.values()) + shed
    # every labelled example is either held or counted as shed: none vanished
    assert labelled == sum(eng.labeller.counters.label_delay)
    assert shed > 0
    assert any("limits.max_held_examples=300" in r.getMessage() for r in caplog.records)


def test_the_behaviour_log_is_cut_to_its_bound_and_counted():
    eng = Engine(load_config(None, {**FAST, "limits.max_log_events": 400}))
    feed(eng, sim_records(4_000, seed=4), 250)
    sizes = [a.log.size for a in eng.pipelines.values()]
    assert sizes and all(s <= 400 for s in sizes)
    assert _shed_metric(eng)["behaviour_log"] > 0
    # figures still come out
    assert all(st.labelled > 0 for st in eng.snapshot().arms)


def test_one_arm_too_many_is_rejected_until_an_arm_goes_idle():
    dead = []
    cfg = small_cfg(**{"limits.max_arms": 2, "time.experiment_idle_timeout": "10s"})
    eng = Engine(cfg, on_invalid=lambda inv, src: dead.append(inv))
    eng.process([imp("a1", 0, arm="a"), imp("b1", 10, arm="b"), imp("c1", 20, arm="c")])
    assert [d.reason for d in dead] == ["shed_overload"] and b"c1" in dead[0].raw
    assert eng.counters.invalid["shed_overload"] == 1
    # Arm "a" goes idle (its last impression is 10 s of event time behind the watermark);
    # "b" stays busy, so "c" now takes a's place.
    eng.process([imp(f"b{k}", 1_000 * k, arm="b") for k in range(2, 13)])
    eng.process([imp("c2", 12_500, arm="c")])
    assert len(dead) == 1
    assert set(eng.labeller.arms) == {("e", "b"), ("e", "c")}


def test_clicks_waiting_for_their_impression_are_bounded():
    from _helpers import click

    dead = []
    eng = Engine(small_cfg(**{"limits.max_pending_impressions": 3}), on_invalid=lambda inv, src: dead.append(inv))
    eng.process([click(f"x{k}", 100) for k in range(5)])
    assert len(eng.joiner._early) == 3
    assert [d.reason for d in dead] == ["shed_overload", "shed_overload"]


def test_state_stays_flat_on_a_long_stream():
    """Every container is bounded by time or by a limit: three times the stream, same sizes."""
    cfg = load_config(None, FAST)

    def sizes(n: int) -> dict[str, int]:
        eng = Engine(cfg)
        feed(eng, sim_records(n, seed=5), 500)
        arms = eng.pipelines.values()
        return {"pending": len(eng.joiner), "final": len(eng.joiner._final),
                "held": sum(a.held for a in arms), "log": sum(a.log.size for a in arms),
                "log_clicked": sum(len(a.log.clicked) for a in arms),
                "log_items": sum(len(a.log._names) for a in arms)}

    short, long = sizes(4_000), sizes(12_000)
    for key, n in long.items():
        assert n <= 1.5 * short[key] + 200, (key, short[key], n)
