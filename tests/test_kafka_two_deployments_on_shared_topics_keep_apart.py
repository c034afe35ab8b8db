"""Two deployments (two ``kafka.group_id``) on the same topics used to mix their state: the
checkpoint keys (``join:0``, ``eval:2``) named no group, so a second deployment resumed from
the first one's checkpoints (its input offsets, counters and learners), and each evaluation
stage applied the other's envelopes from the shared ``labelled`` topic (their records, and
their watermarks moving its clock). Checkpoints are now keyed under the group and envelopes
carry their deployment's origin: each deployment counts its own input once, resumes from its
own state only, and ignores (and says) the other's envelopes. A checkpoint of a release
before group keys is resumed by the group that takes it over, then deleted."""

from __future__ import annotations

import pytest

from kafka_harness import (BOOTSTRAP, WorkerProc, cli, counted_once, fresh_input, require_broker, total)
from stream_lis.runtime.kafka.checkpoints import CheckpointStore
from stream_lis.runtime.kafka.produce import make_producer

pytestmark = [pytest.mark.kafka]

CLIENT = {"bootstrap_servers": BOOTSTRAP}


def _labelled(m: dict) -> float:
    return total(m, "stream_lis_labelled_examples_total")


@pytest.mark.slow
def test_a_second_deployment_neither_resumes_from_nor_evaluates_the_first_ones_state(tmp_path):
    require_broker()
    ov_a, path, n_imps = fresh_input(tmp_path, 3_000, seed=4)
    ov_b = {**ov_a, "kafka.group_id": ov_a["kafka.group_id"] + "-b"}
    rep = cli("replay", str(path), ov=ov_a, timeout=300)
    assert rep.returncode == 0, rep.stderr.decode()

    a = WorkerProc(ov_a, tmp_path / "a.log")
    try:
        a.wait_ready()
        m_a = counted_once(a, n_imps, 180, "deployment a to count its input")
    finally:
        a.stop()  # saves its checkpoints
    assert "resumed from checkpoint" not in (tmp_path / "a.log").read_text()

    b = WorkerProc(ov_b, tmp_path / "b.log")
    try:
        b.wait_ready()
        m_b = counted_once(b, n_imps, 180, "deployment b to count the same input, on its own")
        assert _labelled(m_b) == _labelled(m_a)
        # a's envelopes on the labelled topic were ignored, not applied and then dropped
        assert total(m_b, "stream_lis_duplicate_records_total") == 0
    finally:
        b.stop()
    log_b = (tmp_path / "b.log").read_text()
    assert "resumed from checkpoint" not in log_b, log_b[-3000:]
    assert log_b.count("carries envelopes of another deployment") == 1, log_b[-3000:]

    # a again: from its own checkpoints (b's saves did not replace them), nothing counted twice
    a2 = WorkerProc(ov_a, tmp_path / "a2.log")
    try:
        a2.wait_ready()
        m = counted_once(a2, n_imps, 120, "deployment a to resume")
        assert _labelled(m) == _labelled(m_a) and total(m, "stream_lis_duplicate_records_total") == 0
    finally:
        a2.stop()
    assert "resumed from checkpoint" in (tmp_path / "a2.log").read_text()


def test_a_groupless_checkpoint_is_resumed_once_then_deleted():
    """Upgrading: the group takes over the checkpoint of the release before group keys, saves
    its own, and the group-less one goes, so no later deployment resumes from it."""
    require_broker()
    from kafka_harness import namespace

    ov = namespace()
    assert cli("topics", "create", ov=ov).returncode == 0
    topic = ov["kafka.topics.checkpoints"]
    producer = make_producer(CLIENT)
    try:
        CheckpointStore(topic, producer, CLIENT, 1 << 20).save("join:0", {"state": "before groups"})
        other = CheckpointStore(topic, producer, CLIENT, 1 << 20, group="other")
        assert other.load_all("join:", ["join:0"]) == {"join:0": {"state": "before groups"}}  # before the upgrade
        ours = CheckpointStore(topic, producer, CLIENT, 1 << 20, group="ours")
        assert ours.load_all("join:", ["join:0", "join:1"]) == {"join:0": {"state": "before groups"}}
        ours.save("join:0", {"state": "ours"})
        producer.flush()
        assert CheckpointStore(topic, producer, CLIENT, 1 << 20, group="ours").load_all("join:") == {
            "join:0": {"state": "ours"}}
        # the group-less checkpoint is gone: another deployment starts afresh, and never
        # sees ours
        assert CheckpointStore(topic, producer, CLIENT, 1 << 20, group="other").load_all("join:", ["join:0"]) == {}
        assert CheckpointStore(topic, producer, CLIENT, 1 << 20).load_all("join:", ["join:0"]) == {}
    finally:
        producer.close()
