"""Declaring experiments (or adding an arm) can map an arm to another `labelled` partition:
it starts over there while the old copy waits for its idle timeout. A worker holding both
must not export two series with the same labels: it shows the most recently active copy and
logs the move once."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from stream_lis.runtime.kafka.wire import arm_partition
from stream_lis.runtime.kafka.worker import Worker


def _arm(last_seen: int, name: str) -> SimpleNamespace:
    return SimpleNamespace(last_seen=last_seen, stats=lambda: name)


def test_declaring_experiments_can_move_an_arm():
    # the reason this can happen: declared arms are spread by their index, others hashed
    key = ("lis_demo", "control")
    assert arm_partition(key, 4) != arm_partition(key, 4, {"lis_demo": ["control", "treatment"]})


def test_a_worker_shows_the_live_copy_of_a_moved_arm_and_says_so_once(caplog):
    w = Worker.__new__(Worker)
    w._moved_arms = set()
    ev = SimpleNamespace(parts={
        0: SimpleNamespace(arms=SimpleNamespace(arms={("e", "a"): _arm(5_000, "old a"), ("e", "b"): _arm(9_000, "b")})),
        3: SimpleNamespace(arms=SimpleNamespace(arms={("e", "a"): _arm(8_000, "new a")})),
    })
    with caplog.at_level(logging.WARNING, logger="stream_lis.worker"):
        assert sorted(w._one_copy_per_arm(ev)) == ["b", "new a"]
        assert sorted(w._one_copy_per_arm(ev)) == ["b", "new a"]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "arm e/a is held by labelled partitions 0, 3" in said[0] and "partition 3" in said[0]
