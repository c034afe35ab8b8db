"""The simulator's planted truth must come out of the streaming numbers.

The simulator (stream_lis/simulator.py) plants: item quality only future behaviour reveals
(``future_item`` LIS > 0), a probe that leaks nothing (``noise`` LIS ~ 0), MLLM
representations of fidelity 0.3 (control) and 0.8 (treatment) (AIS treatment > control),
and a perfect preference dataset (``Simulator.preferences()``, the ``external`` probe), whose
LIS is the upper bound of what an MLLM representation of quality can bring.

One 150k-impression run (default world, default time knobs) feeds every slow check: about
12 s on one core.
"""

from __future__ import annotations

import json

import pytest

from stream_lis.config import load_config
from stream_lis.engine import Engine
from stream_lis.simulator import Simulator, SimulatorConfig

IMPRESSIONS = 150_000


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    sim = Simulator(SimulatorConfig(impressions=IMPRESSIONS))
    records = [json.dumps(e).encode() for e in sim.events()]
    prefs = tmp_path_factory.mktemp("prefs") / "quality.jsonl"
    # after the events: items born during the run are in the dataset too
    prefs.write_text("".join(json.dumps(p) + "\n" for p in sim.preferences()))
    cfg = load_config(None, {"probes.enabled": ["future_item", "noise", "external"],
                             "probes.external.path": str(prefs)})
    eng = Engine(cfg)
    for k in range(0, len(records), 5_000):
        eng.process_records(records[k:k + 5_000])
    eng.flush()
    arms = {a.arm: a for a in eng.snapshot().arms}
    assert set(arms) == {"control", "treatment"}
    for a in arms.values():  # the CIs below are over a full window
        assert a.window_examples == cfg.evaluation.window_size
    return arms


@pytest.mark.slow
def test_future_item_lis_confidence_interval_lies_above_zero(planted):
    for arm, st in planted.items():
        assert st.lis["future_item"].low > 0, (arm, st.lis["future_item"])


@pytest.mark.slow
def test_noise_lis_confidence_interval_covers_zero(planted):
    for arm, st in planted.items():
        iv = st.lis["noise"]
        assert iv.low <= 0 <= iv.high, (arm, iv)
        assert st.efficiency["noise"] is None


@pytest.mark.slow
def test_ais_orders_the_arms_by_mllm_fidelity(planted):
    control, treatment = planted["control"].ais, planted["treatment"].ais
    assert control is not None and treatment is not None
    assert treatment.value > control.value
    assert treatment.low > control.value
    assert treatment.low > 0


@pytest.mark.slow
def test_external_perfect_preferences_give_a_clearly_positive_lis_that_bounds_ais(planted):
    for arm, st in planted.items():
        ext = st.lis["external"]
        assert ext.low > 0.02, (arm, ext)
        # quality known exactly beats any representation of it (the paper's upper bound)
        assert st.ais.value < ext.value, arm
    eff = planted["treatment"].efficiency["external"]
    assert eff is not None and 0 < eff < 1


# -- reproducibility ------------------------------------------------------------------------

def _events(seed: int, n: int = 2_000) -> list[dict]:
    return list(Simulator(SimulatorConfig(impressions=n, seed=seed)).events())


def test_simulator_is_reproducible_from_its_seed():
    a, b = _events(5), _events(5)
    assert a == b
    assert sum(e["type"] == "impression" for e in a) == 2_000
    assert sum(e["type"] == "click" for e in a) > 50


def test_a_different_seed_gives_a_different_stream():
    a, b = _events(5), _events(6)
    assert a != b
    ids_a = [e["item_id"] for e in a if e["type"] == "impression"]
    ids_b = [e["item_id"] for e in b if e["type"] == "impression"]
    assert ids_a != ids_b


def test_preferences_are_reproducible_and_cover_every_served_item():
    def prefs(seed):
        sim = Simulator(SimulatorConfig(impressions=1_000, seed=seed))
        served = {e["item_id"] for e in sim.events() if e["type"] == "impression"}
        return served, list(sim.preferences())

    served, p1 = prefs(3)
    _, p2 = prefs(3)
    assert p1 == p2
    assert served <= {p["item_id"] for p in p1}
    assert all(len(p["vector"]) == 1 for p in p1)
