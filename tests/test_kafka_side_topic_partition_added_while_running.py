"""A side topic gets a partition while the worker runs (an operator raising its partition
count): the records produced to it reach the table without a restart, from the new
partition's beginning, and the partitions read before keep their place (nothing applied
twice)."""

from __future__ import annotations

import json

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewPartitions

from stream_lis.embedding_table import record_key

from kafka_harness import BOOTSTRAP, WorkerProc, cli, namespace, require_broker, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _embeddings(m: dict) -> tuple[float, dict[str, float]]:
    entries = next(s.value for s in m["stream_lis_table_entries"] if s.labels["table"] == "embeddings")
    outcomes = {s.labels["outcome"]: s.value for s in m.get("stream_lis_table_records_total", [])
                if s.labels["table"] == "embeddings" and (s.value or s.labels["outcome"] in ("deleted", "absent"))}
    return entries, outcomes


def test_a_partition_added_to_the_embeddings_topic_is_read_while_running(tmp_path):
    require_broker()
    ov = namespace({"embeddings.from_topic": True, "kafka.side_topic_refresh": "500ms", "kafka.partitions": 2})
    topic = ov["kafka.topics.embeddings"]
    assert cli("topics", "create", ov=ov).returncode == 0
    vectors = tmp_path / "embeddings.jsonl"
    vectors.write_text("".join(json.dumps({"arm": "control", "item_id": f"item{k}", "vector": [float(k), 1.0]}) + "\n"
                               for k in range(20)))
    assert cli("embeddings", str(vectors), ov=ov).returncode == 0

    worker = WorkerProc(ov, tmp_path / "worker.log")
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    try:
        worker.wait_ready()
        assert _embeddings(worker.metrics()) == (20, {"upserted": 20, "deleted": 0, "absent": 0})

        admin.create_partitions({topic: NewPartitions(total_count=3)})
        new = {"arm": "control", "item_id": "item-new", "vector": [5.0, 5.0]}
        producer.send(topic, key=record_key(None, "control", "item-new"), value=json.dumps(new).encode(),
                      partition=2).get(timeout=30)
        # and one more on an old partition, after the new one: the old ones go on from where they were
        later = {"arm": "control", "item_id": "item-later", "vector": [6.0, 6.0]}
        producer.send(topic, key=record_key(None, "control", "item-later"), value=json.dumps(later).encode(),
                      partition=0).get(timeout=30)

        wait_for(lambda: _embeddings(worker.metrics())[0] == 22, 60, "the new partition's record in the table",
                 worker.alive)
        # Each record applied once: the two old partitions were not read again from their beginning.
        assert _embeddings(worker.metrics()) == (22, {"upserted": 22, "deleted": 0, "absent": 0})
        assert f"topic {topic} has new partitions 2" in (tmp_path / "worker.log").read_text()
    finally:
        producer.close()
        admin.close()
        worker.stop()
