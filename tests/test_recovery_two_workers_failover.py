"""Two workers in one group: each arm is owned by exactly one of them; when one dies the
other takes its arms over, with their state, and the input counters go with their partitions
(a series per partition that carries on on the survivor, never a worker total that drops)."""

from __future__ import annotations

import threading

import pytest

from kafka_harness import (WorkerProc, accounted, by_arm, cli, namespace, per_partition, require_broker, settled, total,
                           wait_for, write_stream)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

DECLARED = [{"name": "lis_demo", "arms": ["control", "treatment"]}]


def arms_of(worker: WorkerProc) -> set[str]:
    return {a for a, v in by_arm(worker.metrics().get("stream_lis_impressions_total", [])).items() if v > 0}


def test_arms_split_between_two_workers_and_move_when_one_dies(tmp_path):
    require_broker()
    ov = namespace({"experiments": DECLARED})
    path = tmp_path / "events.jsonl"
    n_imps = write_stream(path, 24_000, seed=9)
    assert cli("topics", "create", ov=ov).returncode == 0

    w1 = WorkerProc(ov, tmp_path / "w1.log")
    w2 = WorkerProc(ov, tmp_path / "w2.log")
    replay = threading.Thread(target=lambda: cli("replay", str(path), "--rate", "2500", ov=ov, timeout=300))
    try:
        w1.wait_ready()
        w2.wait_ready()
        wait_for(lambda: total(w1.metrics(), "stream_lis_owned_partitions", stage="eval") == 2
                 and total(w2.metrics(), "stream_lis_owned_partitions", stage="eval") == 2, 60,
                 "the group to split the partitions 2 + 2")
        replay.start()
        def labelled(w: WorkerProc) -> dict[str, float]:
            return by_arm(w.metrics().get("stream_lis_labelled_examples_total", []))

        wait_for(lambda: sum(labelled(w1).values()) > 1000 and sum(labelled(w2).values()) > 1000, 120,
                 "both workers to evaluate their arm", w1.alive)
        a1, a2 = arms_of(w1), arms_of(w2)
        assert len(a1) == len(a2) == 1 and a1 | a2 == {"control", "treatment"}  # each arm on exactly one worker
        moved = next(iter(a1))
        before = labelled(w1)[moved]
        # A checkpoint that *started* after `before` was read holds at least `before` examples:
        # the second save completed after the read began after it.
        saved = total(w1.metrics(), "stream_lis_checkpoints_total", stage="eval")
        wait_for(lambda: total(w1.metrics(), "stream_lis_checkpoints_total", stage="eval") >= saved + 2, 60,
                 "two more evaluation checkpoints", w1.alive)
        records_before = per_partition(w1.metrics(), "stream_lis_records_total")
        w1.kill9()

        wait_for(lambda: arms_of(w2) == {"control", "treatment"}, 90, "the survivor to take the dead worker's arm", w2.alive)
        taken = labelled(w2).get(moved, 0)
        # it continued from the dead worker's checkpoint, not from zero
        assert taken >= before > 0
        replay.join(300)

        wait_for(settled(w2, n_imps), 180, "the survivor to finish the stream", w2.alive)
        m = w2.metrics()
        assert accounted(m) == n_imps
        # The dead worker's input partitions, now the survivor's: each one's counter carries on
        # from the checkpointed count, so it ends at or above what the dead worker last showed.
        records = per_partition(m, "stream_lis_records_total")
        assert records_before and set(records_before) <= set(records)
        assert all(records[p] >= n for p, n in records_before.items()), (records_before, records)
        assert by_arm(m["stream_lis_labelled_examples_total"]) == by_arm(m["stream_lis_impressions_total"])
    finally:
        for w in (w1, w2):
            if w.proc.poll() is None:
                w.stop()
        if replay.is_alive():
            replay.join(300)
