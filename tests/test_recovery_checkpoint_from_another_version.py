"""A checkpointed arm resumes only into the same config and state layout; otherwise it starts
over with a warning instead of failing the evaluation stage on every restart."""

from __future__ import annotations

import logging

import stream_lis.arms as arms_mod
from _helpers import feed, sim_records
from stream_lis.config import load_config
from stream_lis.engine import Engine
from stream_lis.watermark import NEG_INF, POS_INF

CFG = {"time.attribution_window": "5m", "time.horizon": "10m", "learner.hash_bits": 12, "learner.batch_size": 64}


def _trained() -> Engine:
    eng = Engine(load_config(None, CFG))
    feed(eng, sim_records(3_000, seed=2), 500)
    return eng


def test_an_arm_resumes_with_its_counts_learners_and_log():
    eng = _trained()
    key = eng.armset.keys()[0]
    blob = eng.armset.dump_arm(key)
    fresh = Engine(load_config(None, CFG))
    assert fresh.armset.load_arm(key, blob)
    a, b = eng.armset.arms[key], fresh.armset.arms[key]
    assert (b.impressions, b.clicks, b.log.size) == (a.impressions, a.clicks, a.log.size)
    assert b.evaluator.stats().learners == a.evaluator.stats().learners


def test_a_checkpoint_of_another_state_layout_starts_the_arm_over(monkeypatch, caplog):
    eng = _trained()
    key = eng.armset.keys()[0]
    monkeypatch.setattr(arms_mod, "STATE_VERSION", arms_mod.STATE_VERSION - 1)
    blob = eng.armset.dump_arm(key)  # written by "the previous version"
    monkeypatch.undo()
    fresh = Engine(load_config(None, CFG))
    with caplog.at_level(logging.WARNING, logger="stream_lis.arms"):
        assert not fresh.armset.load_arm(key, blob)
    assert fresh.armset.arms[key].impressions == 0
    assert any("state format changed" in r.getMessage() for r in caplog.records)


def test_a_behaviour_log_checkpointed_with_click_lists_answers_the_same():
    """Logs checkpointed when clicks were per-item / per-user lists of tuples (with or without
    their event-time lists) get the click columns on load, and answer the same queries."""
    import pickle

    from stream_lis.probes.log import BehaviourLog

    eng = _trained()
    log = eng.armset.arms[eng.armset.keys()[0]].log
    rows = [c for item in log.clicks.items.names for c in ((ts, u, item, iid) for ts, u, iid in
                                                          log.item_clicks(item, NEG_INF, POS_INF))]
    assert len(rows) == len(log.clicks) > 50
    item_clk: dict = {}
    user_clk: dict = {}
    for ts, user, item, iid in sorted(rows):
        item_clk.setdefault(item, []).append((ts, user, iid))
        user_clk.setdefault(user, []).append((ts, item, iid))
    base = {k: v for k, v in log.__dict__.items() if k != "clicks"}
    for with_times in (False, True):
        state = {**base, "item_clk": item_clk, "user_clk": user_clk, "clicked": dict(log.clicked)}
        if with_times:
            state["item_ts"] = {k: [c[0] for c in v] for k, v in item_clk.items()}
            state["user_ts"] = {k: [c[0] for c in v] for k, v in user_clk.items()}
        legacy = BehaviourLog.__new__(BehaviourLog)
        legacy.__dict__.update(state)
        restored = pickle.loads(pickle.dumps(legacy))
        assert restored.clicked == log.clicked and len(restored.clicks) == len(log.clicks)
        for t in (0, 1_767_225_600_000, 1_767_226_000_000):
            for item in list(item_clk)[:20]:
                assert restored.item_clicks(item, t, t + 600_000) == log.item_clicks(item, t, t + 600_000)
            for user in list(user_clk)[:20]:
                assert restored.user_clicks(user, t, t + 600_000) == log.user_clicks(user, t, t + 600_000)
    restored.prune(1_767_225_900_000)
    log.prune(1_767_225_900_000)
    assert restored.clicked == log.clicked
    assert [restored.item_clicks(i, NEG_INF, POS_INF) for i in item_clk] == [log.item_clicks(i, NEG_INF, POS_INF) for i in item_clk]


def test_where_the_external_dataset_comes_from_is_not_part_of_an_arms_identity(tmp_path):
    """Switching the dataset from a file to the preferences topic (or to another file) keeps
    the learners: the dataset can change under a running arm anyway."""
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text('{"item_id": "item1", "vector": [1.0]}\n')
    with_file = {**CFG, "probes.enabled": ["future_item", "external"], "probes.external.path": str(prefs)}
    eng = Engine(load_config(None, with_file))
    feed(eng, sim_records(3_000, seed=2), 500)
    key = eng.armset.keys()[0]
    blob = eng.armset.dump_arm(key)
    from_topic = {**CFG, "probes.enabled": ["future_item", "external"], "probes.external.from_topic": True}
    worker_side = arms_mod.ArmSet(load_config(None, from_topic), lambda: eng.armset.probes)
    assert worker_side.load_arm(key, blob)
    assert worker_side.arms[key].evaluator.stats().learners == eng.armset.arms[key].evaluator.stats().learners


def test_a_default_config_keeps_the_fingerprint_it_had_before_the_dataset_source_options():
    """Checkpoints written before ``probes.external.from_topic`` existed resume: the
    fingerprint renders the external part as that version did."""
    eng = Engine(load_config(None, CFG))
    c = eng.cfg
    assert "from_topic=False" in repr(c.probes)
    probes_before = repr(c.probes).replace("ExternalProbeConfig(path=None, from_topic=False)", "ExternalProbeConfig(path=None)")
    names = [p.name for p in eng.armset.probes]
    before = f"({arms_mod.STATE_VERSION!r}, {names!r}, {c.time!r}, {c.learner!r}, {c.evaluation!r}, {probes_before})"
    assert eng.armset.fingerprint() == before


def _checkpoint(eng: Engine) -> tuple[dict, dict]:
    """What a worker saves: the labeller's state and each arm's blob, through pickle."""
    import pickle

    lab = pickle.loads(pickle.dumps(eng.labeller.state()))
    return lab, {key: eng.armset.dump_arm(key) for key in eng.armset.keys()}


def _previous_layout(eng: Engine) -> tuple[dict, dict]:
    """The same state as the release before the msgpack blobs wrote it: pending impressions,
    early clicks, final labels and held examples as pickled lists of structs."""
    import pickle

    lab = eng.labeller.state()
    j = eng.labeller.joiner
    del lab["joiner"]["held"], lab["joiner"]["finals"]
    lab["joiner"].update(pending=list(j.pending.values()), early=j._early, final=list(j._final_order),
                         final_labels=j._final)
    arms = {}
    for key in eng.armset.keys():
        s = pickle.loads(eng.armset.dump_arm(key))
        h = eng.armset.arms[key].horizon
        del s["held"]
        s["horizon"] = [e for _, _, e in h._run] + [e for _, _, e in h._heap]
        arms[key] = pickle.dumps(s)
    return pickle.loads(pickle.dumps(lab)), arms


def _resumed(lab_state: dict, arm_blobs: dict) -> Engine:
    eng = Engine(load_config(None, CFG))
    eng.labeller.load(lab_state)
    for key, blob in arm_blobs.items():
        assert eng.armset.load_arm(key, blob)
    return eng


def _figures(eng: Engine) -> str:
    eng.flush()
    snap = eng.snapshot()
    return repr((snap.arms, snap.counters))


def test_pending_joins_and_held_examples_resume_in_either_layout():
    """Mid-stream (impressions waiting for clicks, clicks for impressions still to come,
    examples waiting for their horizon), a worker resumed from a checkpoint, in this layout
    or the previous one, ends with exactly the figures of one that never stopped."""
    records = sim_records(6_000, seed=3, orphan_click_rate=0.05)
    eng = Engine(load_config(None, CFG))
    feed(eng, records[:3_000], 500)
    j = eng.labeller.joiner
    assert len(j.pending) > 50 and j._early and len(j._final) > 50 and eng.armset.held > 50
    now, before = _checkpoint(eng), _previous_layout(eng)
    resumed = [_resumed(*now), _resumed(*before)]
    for r in resumed:  # what tells a late click from an orphan, as it was
        assert r.labeller.joiner._final == j._final and r.labeller.joiner._final_order == j._final_order
    for e in [eng, *resumed]:
        feed(e, records[3_000:], 500)
    want = _figures(eng)
    assert [_figures(e) for e in resumed] == [want, want]


def test_a_previous_release_reads_the_new_layout_without_the_packed_events():
    """The keys of the older layout stay in a checkpoint, empty: a release that reads only
    them resumes (its learners and counts intact) instead of failing on the blobs."""
    import pickle

    eng = Engine(load_config(None, CFG))
    feed(eng, sim_records(3_000, seed=3), 500)
    lab, arms = _checkpoint(eng)
    del lab["joiner"]["held"], lab["joiner"]["finals"]  # what a previous release does not know about
    old_reader = Engine(load_config(None, CFG))
    old_reader.labeller.load(lab)
    assert len(old_reader.labeller.joiner) == 0 and old_reader.labeller.watermark.value == eng.labeller.watermark.value
    for key, blob in arms.items():
        s = pickle.loads(blob)
        del s["held"]
        assert old_reader.armset.load_arm(key, pickle.dumps(s))
        a, b = eng.armset.arms[key], old_reader.armset.arms[key]
        assert len(b.horizon) == 0 < len(a.horizon)
        assert b.evaluator.stats().learners == a.evaluator.stats().learners
