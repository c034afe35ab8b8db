"""An arm's embeddings of another length, or missing, are still evaluated (the mllm learner
reads the coordinates there are) but never silently: each is counted per arm, exported, and
said once in the log."""

from __future__ import annotations

import json
import logging
import pickle
from collections import Counter

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream_lis.config import load_config
from stream_lis.engine import Engine
from stream_lis.evaluator import ArmEvaluator
from stream_lis.exporter import SnapshotCollector
from stream_lis.simulator import Simulator, SimulatorConfig
from stream_lis.table import render_arm

FAST = {"time.horizon": "5m", "time.attribution_window": "5m", "evaluation.window_size": 2000}


def test_wrong_length_and_missing_vectors_are_counted_per_arm(caplog):
    lines, short, bare = [], Counter(), Counter()
    for k, ev in enumerate(Simulator(SimulatorConfig(impressions=4000, seed=3)).events()):
        if ev["type"] == "impression" and k % 50 == 7:
            ev["embedding"] = ev["embedding"][:3]
            short[ev["arm"], json.dumps(ev).encode()] += 1
        elif ev["type"] == "impression" and k % 70 == 9:
            del ev["embedding"]
            bare[ev["arm"], json.dumps(ev).encode()] += 1
        lines.append(json.dumps(ev).encode())
    rejected: Counter = Counter()
    eng = Engine(load_config(None, FAST), on_invalid=lambda inv, src: rejected.update([inv.raw]))
    with caplog.at_level(logging.WARNING, logger="stream_lis.evaluator"):
        eng.process_records(lines)
        eng.flush()
    snap = eng.snapshot()

    def expected(changed: Counter, arm: str) -> int:  # evaluated: the changed lines not rejected
        return sum(n - min(n, rejected[raw]) for (a, raw), n in changed.items() if a == arm)

    reg = CollectorRegistry()
    reg.register(SnapshotCollector(lambda: snap))
    exported = {(s.labels["arm"], s.labels["kind"]): s.value
                for fam in text_string_to_metric_families(generate_latest(reg).decode())
                if fam.name == "stream_lis_embedding_mismatches" for s in fam.samples if s.name.endswith("_total")}
    for a in snap.arms:
        assert a.embedding_dims == 8
        assert a.embedding_wrong_length == expected(short, a.arm) > 0
        assert a.embedding_missing == expected(bare, a.arm) > 0
        assert exported[a.arm, "length"] == a.embedding_wrong_length
        assert exported[a.arm, "missing"] == a.embedding_missing
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 * len(snap.arms)  # once per arm and kind, however many batches
    assert all("8-coordinate embeddings" in m for m in said)
    # ... and in the run's table, under the arm's learners
    for a in snap.arms:
        assert render_arm(a)[-1] == (f"  embeddings: {a.embedding_wrong_length:,} examples with another length than "
                                     f"the arm's 8, {a.embedding_missing:,} without a vector")


def test_arms_without_embeddings_count_nothing():
    lines = []
    for ev in Simulator(SimulatorConfig(impressions=1500, seed=4)).events():
        ev.pop("embedding", None)
        lines.append(json.dumps(ev).encode())
    eng = Engine(load_config(None, FAST))
    eng.process_records(lines)
    eng.flush()
    snap = eng.snapshot()
    assert snap.arms and all(not a.has_embeddings and a.embedding_missing == 0 and a.embedding_dims == 0
                             for a in snap.arms)
    reg = CollectorRegistry()
    reg.register(SnapshotCollector(lambda: snap))
    assert "stream_lis_embedding_mismatches_total{" not in generate_latest(reg).decode()


def test_an_evaluator_from_an_older_checkpoint_starts_its_counts_at_zero():
    ev = ArmEvaluator("e", "a", load_config(None, FAST), ["noise"])
    state = ev.__dict__.copy()
    for name in ("embedding_dims", "embedding_wrong_length", "embedding_missing"):
        state.pop(name, None)
    old = ArmEvaluator.__new__(ArmEvaluator)
    old.__dict__.update(pickle.loads(pickle.dumps(state)))
    s = old.stats()
    assert (s.embedding_dims, s.embedding_wrong_length, s.embedding_missing) == (0, 0, 0)
