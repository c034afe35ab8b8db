"""Declaring experiments (or adding an arm) can map an arm to another `labelled` partition:
it starts over there while the old copy waits for its idle timeout. A worker holding both
must not export two series with the same labels: it shows the most recently active copy and
logs the move once."""

from __future__ import annotations

import json
import logging
from collections import Counter
from types import SimpleNamespace

import pytest

from kafka_harness import WorkerProc, cli, namespace, require_broker, total, wait_for
from stream_lis.runtime.kafka.wire import arm_partition
from stream_lis.runtime.kafka.worker import Worker
from stream_lis.simulator import Simulator, SimulatorConfig


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


def _events(path, seed: int, prefix: str, shift_ms: int) -> None:
    """A simulator stream with its own impression ids, ``shift_ms`` later in event time."""
    out = []
    for ev in Simulator(SimulatorConfig(impressions=1500, seed=seed)).events():
        ev["impression_id"] = prefix + str(ev.get("impression_id"))
        if isinstance(ev.get("ts"), int):
            ev["ts"] += shift_ms
        out.append(json.dumps(ev))
    path.write_text("\n".join(out) + "\n")


@pytest.mark.kafka
@pytest.mark.slow
def test_on_the_broker_a_moved_arm_is_exported_once(tmp_path):
    require_broker()
    ov = namespace()
    assert cli("topics", "create", ov=ov).returncode == 0
    first, later = tmp_path / "first.jsonl", tmp_path / "later.jsonl"
    _events(first, 5, "a-", 0)
    _events(later, 6, "b-", 86_400_000)
    worker = WorkerProc(ov, tmp_path / "before.log")
    try:
        worker.wait_ready()
        assert cli("replay", str(first), ov=ov).returncode == 0
        wait_for(lambda: min(total(worker.metrics(), "stream_lis_impressions_total", arm=a) for a in ("control", "treatment")) > 0,
                 120, "both arms' impressions", worker.alive)
    finally:
        worker.stop()
    # The same group, now with the experiment declared: control maps to another partition.
    declared = {**ov, "experiments": [{"name": "lis_demo", "arms": ["control", "treatment"]}]}
    log = tmp_path / "after.log"
    worker = WorkerProc(declared, log)
    try:
        worker.wait_ready()
        assert cli("replay", str(later), ov=declared).returncode == 0
        # the worker looks at its arms when /metrics is scraped
        wait_for(lambda: total(worker.metrics(), "stream_lis_impressions_total") > 0
                 and "is held by labelled partitions" in log.read_text(), 120, "the moved arm to be noticed", worker.alive)
        status, body = worker.get("/metrics")
        assert status == 200
        series = Counter(line.rsplit(" ", 1)[0] for line in body.splitlines() if line and not line.startswith("#"))
        assert [k for k, n in series.items() if n > 1] == []
        assert "arm lis_demo/control is held by labelled partitions" in log.read_text()
    finally:
        worker.stop()
