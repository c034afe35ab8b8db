"""``WindowIndex`` keeps a main sorted run and a recent one folded in by size: whatever the
split, a count is the brute-force count, through prunes, folds, base moves and a checkpoint."""

from __future__ import annotations

import pickle

import numpy as np

from stream_lis.probes.window_index import WindowIndex


def _brute(events: list[tuple[int, int]], keys, start, end) -> list[int]:
    return [sum(1 for k, t in events if k == key and s < t <= e) for key, s, e in zip(keys, start, end)]


def test_counts_match_brute_force_while_runs_fold_and_prune():
    rng = np.random.default_rng(3)
    idx, events, now, folds = WindowIndex(), [], 1_000_000, 0
    for step in range(60):
        n = int(rng.integers(50, 900))
        for _ in range(n):  # arrival order: times near ``now``, a little out of order
            k, t = int(rng.integers(0, 40)), now + int(rng.integers(-500, 2_000))
            idx.add(k, t)
            events.append((k, t))
        now += 1_500
        before_recent = len(idx._recent)
        q = 64
        keys = rng.integers(0, 42, q)
        start = now - rng.integers(0, 40_000, q)
        end = start + rng.integers(0, 30_000, q)
        assert idx.count(keys, start, end).tolist() == _brute(events, keys, start, end)
        folds += len(idx._recent) < before_recent
        if step % 7 == 6:
            cut = now - 30_000
            idx.prune(cut)
            events = [(k, t) for k, t in events if t > cut]
            assert len(idx) == len(events)
        if step == 40:  # an event far in the past moves the base: both runs shift
            idx.add(5, now - 10 ** 12)
            events.append((5, now - 10 ** 12))
    assert folds >= 2 and len(idx._sorted) > 0  # the split was exercised
    assert idx.times(7).tolist() == sorted(t for k, t in events if k == 7)


def test_an_index_checkpointed_before_the_recent_run_resumes():
    idx = WindowIndex()
    for t in (10, 20, 30):
        idx.add(1, t)
    idx.composite()
    state = dict(idx.__dict__)
    del state["_recent"]  # the layout of older checkpoints
    old = WindowIndex.__new__(WindowIndex)
    old.__dict__.update(state)
    restored = pickle.loads(pickle.dumps(old))
    restored.add(1, 40)
    assert restored.count(np.array([1]), np.array([15]), np.array([40])).tolist() == [3]
