"""The look-ahead horizon: nothing is learnt early, probes read only (t, t + H], and the clean
learner never sees leaked features.

(a) timing: every learner scores/learns an example only once the watermark has passed
    ``ts + max(W, H)``, and all learners of an arm get the same examples in the same order;
(b) windows: each built-in probe's features come from behaviour in ``(t, t + H]`` only, and
    never from the example's own impression or click;
(c) isolation: a probe that leaks the label itself inflates its leaky learner's AUC to ~1
    while the clean (and mllm) learner's numbers do not move by a single bit.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import stream_lis.evaluator as evaluator_mod
from _helpers import RecordingProbe, click, imp, recording_engine, small_cfg
from stream_lis.config import load_config
from stream_lis.engine import Engine
from stream_lis.features import Row
from stream_lis.horizon import LookAheadBuffer
from stream_lis.join import LabelledExample
from stream_lis.learners import FeatureBatch, Learner, make_learner
from stream_lis.probes import (BehaviourLog, CoClickProbe, FutureItemProbe, NextClickProbe, NoiseProbe,
                               Probe, build_probes)
from stream_lis.simulator import Simulator, SimulatorConfig
from stream_lis.watermark import POS_INF

# -- (a) nothing is learnt before the horizon ----------------------------------------------


class TimedLearner(Learner):
    """Wraps a real learner; logs the engine's watermark and each row's event time per call."""

    def __init__(self, inner: Learner, journal: list, engine_ref: dict) -> None:
        self.inner, self.journal, self.engine_ref = inner, journal, engine_ref

    def _log(self, kind: str, batch: FeatureBatch) -> None:
        ts = [int(next(k for k in row if k.startswith("f:tsms="))[len("f:tsms="):]) for row in batch.rows]
        self.journal.append((kind, id(self), self.engine_ref["engine"].watermark.value, ts))

    def predict_batch(self, batch):
        self._log("predict", batch)
        return self.inner.predict_batch(batch)

    def learn_batch(self, batch, y):
        self._log("learn", batch)
        self.inner.learn_batch(batch, y)


def _timed_sim_records(n: int, seed: int) -> list[bytes]:
    """Simulator records whose impressions carry their event time as a context feature."""
    out = []
    for e in Simulator(SimulatorConfig(impressions=n, seed=seed)).events():
        if e["type"] == "impression":
            e["features"]["tsms"] = str(e["ts"])
        out.append(json.dumps(e).encode())
    return out


@pytest.mark.parametrize("window,horizon", [("2m", "4m"), ("4m", "2m")], ids=["H>W", "W>H"])
def test_no_learner_sees_an_example_before_the_watermark_passes_ts_plus_max_w_h(monkeypatch, window, horizon):
    journal: list = []
    ref: dict = {}
    monkeypatch.setattr(evaluator_mod, "make_learner",
                        lambda cfg: TimedLearner(make_learner(cfg), journal, ref))
    cfg = load_config(None, {"time.attribution_window": window, "time.horizon": horizon,
                             "time.allowed_lateness": "30s", "learner.batch_size": 16,
                             "learner.hash_bits": 14, "evaluation.window_size": 500,
                             "probes.enabled": ["future_item", "next_click", "co_click", "noise"]})
    hold = max(cfg.time.attribution_window_ms, cfg.time.horizon_ms)
    rec = RecordingProbe()
    eng = Engine(cfg, probes=[rec, *build_probes(cfg.probes)])
    rec.engine = ref["engine"] = eng
    # cut the stream mid-flow so the end of input truncates the last examples' windows
    records = _timed_sim_records(4_400, seed=3)[:4_000]
    for k in range(0, len(records), 97):
        eng.process_records(records[k:k + 97])
    before_flush = len(journal)
    released_before_flush = len(rec.released)
    end = eng.watermark.max_ts
    eng.flush()

    # Probes are asked only once the whole window (and the label) is final.
    for iid, _, _, ts, wm in rec.released[:released_before_flush]:
        assert wm > ts + hold, (iid, ts, wm)
    assert all(wm == POS_INF for *_, wm in rec.released[released_before_flush:])

    # Learners score and learn only examples whose horizon the watermark passed.
    during = journal[:before_flush]
    rows_learnt = sum(len(ts) for kind, _, _, ts in during if kind == "learn")
    assert rows_learnt > 1_000  # not vacuous: most of the stream is evaluated live
    for kind, _, wm, tss in during:
        assert max(tss) + hold < wm, (kind, max(tss), wm)

    # Every learner of an arm gets the same examples in the same order, scored then learnt.
    by_learner: dict[tuple[str, int], list[int]] = {}
    for kind, lid, _, tss in journal:
        by_learner.setdefault((kind, lid), []).extend(tss)
    for arm in eng.arms.values():
        ids = [id(arm.learners[n]) for n in arm.learner_names]
        assert len(ids) == 7  # clean, 5 leaky (rec + 4 built-in), mllm
        seqs = {tuple(by_learner[(kind, lid)]) for kind in ("predict", "learn") for lid in ids}
        assert len(seqs) == 1 and len(next(iter(seqs))) == arm.positives + arm.negatives

    # Examples whose window the end of input cut short are learnt but kept out of the AUCs.
    truncated = sum(1 for *_, ts, wm in rec.released if wm == POS_INF and ts + hold > end)
    assert truncated > 0
    assert sum(a.truncated for a in eng.arms.values()) == truncated


def test_a_run_stopped_before_its_input_ended_keeps_every_held_example_out_of_the_aucs():
    # lateness 100 ms: once the event at 200 is read the watermark is 100, and the click at
    # 155 (on time) is still to come. A run cut there must not count x, labelled 0 by the
    # flush, as a complete example; at the natural end of the same events x is a positive.
    cfg = small_cfg(window="10ms", horizon="10ms", lateness="100ms")
    events = [imp("x", 150), imp("k", 200, user="v", item="b"), click("x", 155)]
    for read, input_ended, truncated in ((2, False, 2), (3, True, 1)):  # k at 200 + 10 > 200: cut
        eng, rec = recording_engine(cfg)
        eng.process(events[:read])
        eng.flush(input_ended=input_ended)
        assert rec.labels()["x"] == (read == 3)
        assert sum(a.truncated for a in eng.arms.values()) == truncated


def test_the_embedded_runtime_says_when_it_stopped_before_the_input_ended():
    from stream_lis.events import encode_event
    from stream_lis.runtime.embedded import EmbeddedRuntime

    cfg = small_cfg(window="10ms", horizon="10ms", lateness="100ms")
    records = [encode_event(e) for e in (imp("x", 150), imp("k", 200, user="v", item="b"), click("x", 155))]
    for max_records, truncated in ((2, 2), (None, 1)):
        res = EmbeddedRuntime(cfg, port=None).run(records, max_records=max_records, report_every_s=None)
        assert sum(a.truncated for a in res.snapshot.arms) == truncated


@pytest.mark.parametrize("window,horizon,release", [("1s", "2s", 2_000), ("2s", "1s", 2_000), ("1s", "1s", 1_000)])
def test_example_is_released_only_after_the_watermark_strictly_passes_ts_plus_hold(window, horizon, release):
    eng, rec = recording_engine(small_cfg(window=window, horizon=horizon, lateness=0))
    eng.process([imp("i1", 0), imp("z1", release, user="v")])
    assert rec.released == []
    eng.process([imp("z2", release + 1, user="v")])
    assert [(r[0], r[4]) for r in rec.released] == [("i1", release + 1)]


def test_look_ahead_buffer_releases_in_time_then_id_order():
    buf = LookAheadBuffer(hold_ms=100)
    for iid, ts in [("b", 10), ("a", 10), ("c", 5), ("d", 50)]:
        buf.push(LabelledExample(imp(iid, ts), 0, None, ts + 1))
    assert buf.oldest_ts() == 5
    assert buf.pop_ready(105) == []
    assert [x.impression.impression_id for x in buf.pop_ready(111)] == ["c", "a", "b"]
    assert [x.impression.impression_id for x in buf.pop_ready(POS_INF)] == ["d"]


# -- (b) probes read (t, t + H] only ------------------------------------------------------

T, H = 1_000, 500
END = T + H
OWN = "self"


def _example(label: int = 1, click_ts: int | None = 1_200) -> LabelledExample:
    return LabelledExample(imp(OWN, T, user="u", item="a"), label, click_ts, click_ts or T + 1_000)


def _crafted_log(own_click: bool | None = True, outside: str = "a") -> BehaviourLog:
    """Item "a" and user "u" behaviour before t, at t, inside (t, t+H], at t+H and after.

    ``outside``: the item that item a's out-of-window events are logged under (moving them to
    another item at the same times keeps every all-items total unchanged).
    ``own_click``: True logs the example's own click, False logs a stranger's click on another
    item at the same time instead (same all-items totals), None logs neither.
    """
    log = BehaviourLog()
    for ts in (900, 1_000, 1_600):  # before t, at t (besides the own impression), after t+H
        log.add_impression(outside, ts)
    for ts in (1_000, 1_100, 1_400, 1_500):  # the own impression at t, then (t, t+H]
        log.add_impression("a", ts)
    clicks = [  # (user, item, ts, impression id)
        ("v1", outside, 900, "x0"),  # before t
        ("v2", outside, 1_000, "x1"),  # at t: not in (t, t+H]
        ("v3", "a", 1_300, "x2"),  # inside
        ("v4", "a", 1_500, "x3"),  # at t+H: inside
        ("v5", outside, 1_600, "x4"),  # after
        ("v3", "p", 1_350, "y1"), ("v3", "q", 1_450, "y2"), ("v4", "p", 1_100, "y3"),
        ("v3", "r", 1_700, "y4"), ("v3", "s", 900, "y5"),  # co-clicker's clicks outside the window
        ("v1", "z", 1_200, "y6"), ("v5", "z", 1_550, "y7"),  # non-co-clickers' clicks
        ("u", "b", 900, "n0"),  # the user's clicks: before t,
        ("u", "c", 1_000, "n1"),  # at t,
        ("u", "d", 1_300, "n2"),  # first inside after the own click,
        ("u", "e", 1_400, "n3"),
        ("u", "f", 1_600, "n4"),  # after t+H
    ]
    if own_click:
        clicks.append(("u", "a", 1_200, OWN))
    elif own_click is False:
        clicks.append(("stranger", "elsewhere", 1_200, "pad"))
    for user, item, ts, iid in clicks:
        log.add_click(user, item, ts, iid)
    return log


def test_future_item_counts_only_the_items_behaviour_in_the_window():
    probe = FutureItemProbe(prior_strength=5.0)
    row = probe.leaked([_example()], _crafted_log(), H)[0]
    # impressions of "a" in (1000, 1500]: 1100, 1400, 1500 (not 900, the two at t, 1600)
    assert row["fi:log_imps"] == pytest.approx(math.log1p(3))
    # the item's impressions and clicks before t, at t and after t+H do not count
    moved = probe.leaked([_example()], _crafted_log(outside="elsewhere"), H)[0]
    assert moved == pytest.approx(row)


def test_future_item_does_not_count_the_examples_own_click():
    probe = FutureItemProbe(prior_strength=5.0)
    # The own click is left out of the item's clicks and of the window's base rate alike, so a
    # positive example gets exactly the features it would have had without its click.
    with_own = probe.leaked([_example(1, 1_200)], _crafted_log(own_click=True), H)[0]
    without = probe.leaked([_example(0, None)], _crafted_log(own_click=None), H)[0]
    assert with_own == pytest.approx(without)


def test_future_item_is_monotone_in_future_clicks():
    probe = FutureItemProbe(prior_strength=5.0)
    base = _crafted_log()
    more = _crafted_log()
    base.add_click("w", "elsewhere", 1_250, "pad2")  # same all-items totals
    more.add_click("w", "a", 1_250, "x9")
    assert probe.leaked([_example()], more, H)[0]["fi:ctr_lift"] > probe.leaked([_example()], base, H)[0]["fi:ctr_lift"]


def test_future_item_ignores_behaviour_after_the_horizon():
    # Failed on the committed code (HEAD 62398bb): its prior was the log's all-time CTR.
    probe = FutureItemProbe(prior_strength=5.0)
    log = _crafted_log()
    before = probe.leaked([_example()], log, H)[0]
    for k in range(50):  # the item's (and others') later life, after t + H
        log.add_impression("a", END + 1 + k)
        log.add_click(f"later{k}", "a", END + 1 + k, f"later{k}")
        log.add_impression("b", END + 1 + k)
    assert probe.leaked([_example()], log, H)[0] == pytest.approx(before)


def test_future_item_ignores_behaviour_before_t():
    probe = FutureItemProbe(prior_strength=5.0)
    log = _crafted_log()
    before = probe.leaked([_example()], log, H)[0]
    for k in range(50):
        log.add_impression("a", k)
        log.add_impression("b", k)
        log.add_click(f"early{k}", "b", k, f"early{k}")
    assert probe.leaked([_example()], log, H)[0] == pytest.approx(before)


def test_future_item_features_are_the_same_with_or_without_the_own_click():
    probe = FutureItemProbe(prior_strength=5.0)
    with_own = probe.leaked([_example(1, 1_200)], _crafted_log(own_click=True), H)[0]
    no_click = probe.leaked([_example(0, None)], _crafted_log(own_click=None), H)[0]
    assert with_own == pytest.approx(no_click, rel=1e-12, abs=1e-12)


def test_next_click_picks_the_users_first_click_after_t_excluding_its_own():
    row = NextClickProbe().leaked([_example()], _crafted_log(), H)[0]
    assert row == {"nc:any": 1.0, "nc:item=d": 1.0}


@pytest.mark.parametrize("clicks,expected", [
    ([], {}),
    ([("a", 1_200, OWN)], {}),  # only its own click: nothing leaks
    ([("a", 1_000, "n"), ("b", 1_600, "m")], {}),  # at t and after t+H only
    ([("b", 1_500, "m")], {"nc:any": 1.0, "nc:item=b": 1.0}),  # at t+H counts
    ([("a", 1_200, OWN), ("a", 1_300, "again")], {"nc:any": 1.0, "nc:item=a": 1.0, "nc:same_item": 1.0}),
])
def test_next_click_window_edges(clicks, expected):
    log = BehaviourLog()
    for item, ts, iid in clicks:
        log.add_click("u", item, ts, iid)
    log.add_click("someone_else", "x", 1_100, "other")
    assert NextClickProbe().leaked([_example()], log, H)[0] == expected


def test_co_click_uses_only_in_window_co_clickers_and_their_in_window_clicks():
    row = CoClickProbe(top_k=5).leaked([_example()], _crafted_log(), H)[0]
    # co-clickers of "a" in (t, t+H]: v3 (1300), v4 (1500); not v1/v2/v5 (outside), not u (own)
    assert row == pytest.approx({"cc:item=p": 1.0, "cc:item=q": 1.0, "cc:log_users": math.log1p(2)})
    top1 = CoClickProbe(top_k=1).leaked([_example()], _crafted_log(), H)[0]
    assert set(top1) == {"cc:item=p", "cc:log_users"}  # p is co-clicked by both, q by one


def test_co_click_own_click_alone_leaks_nothing():
    log = BehaviourLog()
    log.add_click("u", "a", 1_200, OWN)
    log.add_click("u", "b", 1_300, "n")
    assert CoClickProbe().leaked([_example()], log, H)[0] == {}


def test_probes_give_one_row_per_example_in_order():
    log = _crafted_log()
    exs = [_example(), LabelledExample(imp("other", T, user="nobody", item="nothing"), 0, None, T + 1_000)]
    for probe in (FutureItemProbe(), NextClickProbe(), CoClickProbe(), NoiseProbe(2)):
        rows = probe.leaked(exs, log, H)
        assert len(rows) == 2
    assert NextClickProbe().leaked(exs, log, H)[1] == {}
    assert CoClickProbe().leaked(exs, log, H)[1] == {}
    assert FutureItemProbe().leaked(exs, log, H)[1]["fi:log_imps"] == 0.0


# -- (c) the clean learner never gets leaked features --------------------------------------


class LabelOracle(Probe):
    """A planted leak: the leaked feature *is* the label."""

    name = "oracle"

    def leaked(self, examples, log, horizon_ms) -> list[Row]:
        return [{"leak": float(ex.label)} for ex in examples]


def _oracle_run(with_oracle: bool):
    records = [json.dumps(e).encode() for e in Simulator(SimulatorConfig(impressions=8_000, seed=11)).events()]
    cfg = load_config(None, {"time.attribution_window": "5m", "time.horizon": "10m",
                             "evaluation.window_size": 2_000, "learner.hash_bits": 16})
    probes: list[Probe] = [NoiseProbe(1)] + ([LabelOracle()] if with_oracle else [])
    eng = Engine(cfg, probes=probes)
    for k in range(0, len(records), 1_000):
        eng.process_records(records[k:k + 1_000])
    eng.flush()
    return eng


def test_label_leak_inflates_only_its_leaky_learner_and_clean_is_bit_identical():
    leaky, plain = _oracle_run(True), _oracle_run(False)
    s_leaky, s_plain = leaky.snapshot(), plain.snapshot()
    assert [a.arm for a in s_leaky.arms] == [a.arm for a in s_plain.arms] == ["control", "treatment"]
    for a, b in zip(s_leaky.arms, s_plain.arms):
        assert a.window_examples >= 1_000
        # the planted leak is found: near-perfect AUC, large significant LIS
        assert a.learners["leaky:oracle"].auc_window > 0.93
        assert a.lis["oracle"].low > 0.2
        # the clean and mllm learners are independent of the probes: exactly the same numbers
        for name in ("clean", "mllm", "leaky:noise"):
            assert a.learners[name] == b.learners[name], name
        assert a.lis["noise"] == b.lis["noise"]
        assert a.ais == b.ais
        assert a.learners["clean"].auc_window < 0.85  # the clean ranker is no oracle
    # and the window scores of the clean column are identical example by example
    for key in leaky.arms:
        la, pa = leaky.arms[key], plain.arms[key]
        np.testing.assert_array_equal(la.window.view()[0], pa.window.view()[0])
        np.testing.assert_array_equal(la.window.view()[1][:, 0], pa.window.view()[1][:, 0])
