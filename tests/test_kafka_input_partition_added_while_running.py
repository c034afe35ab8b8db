"""A partition is added to one input topic while a worker runs (an operator scaling the
impressions topic alone): the start-time check cannot see it, and from then on clicks miss
their impressions, which only a falling CTR would show. The join stage says so in its log,
once, naming both counts, and exports ``stream_lis_input_copartitioned`` 0 until the other
topic has as many partitions."""

from __future__ import annotations

import pytest
from kafka.admin import KafkaAdminClient, NewPartitions

from kafka_harness import BOOTSTRAP, WorkerProc, cli, namespace, require_broker, total, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _copartitioned(worker: WorkerProc) -> float | None:
    m = worker.metrics()
    return total(m, "stream_lis_input_copartitioned") if "stream_lis_input_copartitioned" in m else None


def test_a_partition_added_to_one_input_topic_is_said_and_exported(tmp_path):
    require_broker()
    ov = namespace({"kafka.side_topic_refresh": "500ms", "kafka.partitions": 2})
    assert cli("topics", "create", ov=ov).returncode == 0
    log = tmp_path / "worker.log"
    worker = WorkerProc(ov, log)
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        worker.wait_ready()
        wait_for(lambda: _copartitioned(worker) == 1.0, 30, "the copartitioned gauge at 1", worker.alive)

        admin.create_partitions({ov["kafka.topics.impressions"]: NewPartitions(total_count=3)})
        wait_for(lambda: _copartitioned(worker) == 0.0, 60, "the copartitioned gauge at 0", worker.alive)
        said = f"topic {ov['kafka.topics.impressions']} has 3 partitions and topic {ov['kafka.topics.clicks']} 2"
        wait_for(lambda: said in log.read_text(), 10, "the error line", worker.alive)
        # said once, not at every look (five a second)
        worker.wait_ready()
        assert log.read_text().count(said) == 1
        assert "Traceback" not in log.read_text()

        admin.create_partitions({ov["kafka.topics.clicks"]: NewPartitions(total_count=3)})
        wait_for(lambda: _copartitioned(worker) == 1.0, 60, "the copartitioned gauge back at 1", worker.alive)
        assert log.read_text().count(said) == 1
    finally:
        admin.close()
        worker.stop()
