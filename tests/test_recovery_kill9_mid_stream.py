"""A worker killed with SIGKILL mid-stream and restarted resumes from its checkpoint: no
label is lost or counted twice, and the learners continue instead of starting over. The
checkpoints are signed (``$STREAM_LIS_CHECKPOINT_KEY``): the restarted worker verifies them."""

from __future__ import annotations

import re

import pytest

from kafka_harness import WorkerProc, counted_once, fresh_input, replay_in_background, require_broker, total, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_kill9_mid_stream_then_restart_counts_every_label_exactly_once(tmp_path, monkeypatch):
    require_broker()
    monkeypatch.setenv("STREAM_LIS_CHECKPOINT_KEY", "a key the two workers share")  # the workers inherit it
    ov, path, n_imps = fresh_input(tmp_path, 24_000, seed=5)

    worker = WorkerProc(ov, tmp_path / "worker1.log")
    replay = replay_in_background(path, ov)
    try:
        worker.wait_ready()

        def mid_stream() -> bool:
            m = worker.metrics()
            return total(m, "stream_lis_labelled_examples_total") >= 2000 and total(m, "stream_lis_checkpoints_total", stage="eval") >= 2

        wait_for(mid_stream, 120, "labels and checkpoints before the kill", worker.alive)
        before = total(worker.metrics(), "stream_lis_labelled_examples_total")
        worker.kill9()
    finally:
        if worker.proc.poll() is None:
            worker.stop()

    restarted = WorkerProc(ov, tmp_path / "worker2.log")
    try:
        ready_s = restarted.wait_ready()
        first = restarted.metrics()
        resumed = total(first, "stream_lis_labelled_examples_total")
        # it resumed from a checkpoint (learner state and counts), not from zero: what the
        # checkpoints restored (the worker logs it per partition) is where it went on from
        restored = sum(int(m.group(1)) for m in re.finditer(
            r"resumed from checkpoint at offset \d+ \(\d+ arms, (\d+) labelled examples\)", restarted.log.read_text()))
        assert 0 < restored <= resumed
        assert total(first, "stream_lis_checkpoints_refused_total") == 0  # its own signed checkpoints
        assert "not signed" not in restarted.log.read_text()
        first_auc = {(s.labels["arm"], s.labels["learner"]): s.value for s in first["stream_lis_auc"]
                     if s.labels["window"] == "cumulative"}
        assert first_auc, "restored arms report their AUCs at once"
        replay.join(300)

        # every window closed: one label per accepted impression, exactly
        m = counted_once(restarted, n_imps, 180, "every impression to be labelled after the restart")
        print(f"restart ready in {ready_s:.1f} s; restored {restored} labels, {resumed:.0f} at the first scrape "
              f"(killed at {before:.0f}); "
              f"duplicates dropped {total(m, 'stream_lis_duplicate_records_total'):.0f}")
    finally:
        restarted.stop()
