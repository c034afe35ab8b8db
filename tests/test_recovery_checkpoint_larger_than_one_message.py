"""A checkpoint larger than one Kafka message (``kafka.max_checkpoint_bytes``) is written in
parts plus a manifest naming them, and read back whole. At the memory bounds a partition's
state compresses to hundreds of megabytes: a checkpoint the producer refused was no
checkpoint at all (the evaluation stage stopped saving; the join stage stopped the worker).

What is checked, against the real broker: the parts and the manifest on the topic; a newer
checkpoint deletes the parts of the one before (also when another worker wrote them); a
manifest whose parts are missing, or a message that is no checkpoint, is refused and counted
instead of stopping the worker; parts no manifest names (a save that died half-way) are
deleted by the worker taking their partition over; and a worker killed mid-stream resumes
from checkpoints saved in parts, every label counted exactly once."""

from __future__ import annotations

import os
import re

import pytest
from kafka import KafkaConsumer, TopicPartition

from kafka_harness import (BOOTSTRAP, WorkerProc, cli, counted_once, namespace, replay_in_background, require_broker,
                           total, wait_for, write_stream)
from stream_lis.runtime.kafka import checkpoints
from stream_lis.runtime.kafka.checkpoints import MANIFEST, CheckpointStore, part_key
from stream_lis.runtime.kafka.produce import make_producer

pytestmark = [pytest.mark.kafka]

LIMIT = 64 * 1024  # the smallest max_checkpoint_bytes the config allows
CLIENT = {"bootstrap_servers": BOOTSTRAP}


def latest_values(topic: str) -> dict[str, bytes | None]:
    """The topic's latest value per key, as compaction will keep it (``None``: deleted)."""
    consumer = KafkaConsumer(enable_auto_commit=False, **CLIENT)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        out: dict[str, bytes | None] = {}
        while consumer.position(tp) < end:
            for msgs in consumer.poll(timeout_ms=1000).values():
                for m in msgs:
                    out[m.key.decode()] = m.value
        return out
    finally:
        consumer.close()


@pytest.fixture
def topic():
    require_broker()
    ov = namespace({"kafka.max_checkpoint_bytes": LIMIT})
    assert cli("topics", "create", ov=ov).returncode == 0
    producer = make_producer(CLIENT, max_request_size=LIMIT, batch_size=LIMIT)  # as the worker's
    yield ov["kafka.topics.checkpoints"], producer
    producer.close()


def store(topic, key: bytes | None = b"a key") -> CheckpointStore:
    """A worker's store (a new one stands for another worker, or the same one restarted)."""
    name, producer = topic
    return CheckpointStore(name, producer, CLIENT, LIMIT, key)


def parts_of(values: dict[str, bytes | None], key: str) -> list[str]:
    return sorted((k for k in values if k.startswith(key + "#")), key=lambda k: int(k.rsplit(".", 1)[1]))


def test_a_checkpoint_over_the_limit_goes_in_parts_and_the_next_one_deletes_them(topic, monkeypatch):
    state = {"weights": os.urandom(300_000), "n": 1}  # random bytes: zlib cannot shrink them under the limit
    first = store(topic)
    size = first.save("eval:0", state)
    values = latest_values(topic[0])
    parts = parts_of(values, "eval:0")
    assert size > LIMIT and len(parts) == -(-size // first.part_bytes) >= 5
    assert all(0 < len(values[k]) <= first.part_bytes for k in parts)
    assert values["eval:0"].startswith(MANIFEST)

    restarted = store(topic)  # a worker taking the partition over reads the parts back whole
    # and says it makes progress meanwhile (a long restore is not a stall): at the polls that
    # bring records, and before it unpickles each checkpoint
    steps: list[str] = []
    real_unpack = checkpoints.unpack
    monkeypatch.setattr(checkpoints, "unpack", lambda blob: (steps.append("unpack"), real_unpack(blob))[1])
    assert restarted.load_all("eval:", ["eval:0"], lambda: steps.append("beat")) == {"eval:0": state}
    assert restarted.refused == 0 and steps[-2:] == ["beat", "unpack"] and steps.count("beat") >= 2, steps
    # its next checkpoint of the key fits one message: the parts it resumed from are deleted
    restarted.save("eval:0", {"n": 2})
    topic[1].flush()
    values = latest_values(topic[0])
    assert [values[k] for k in parts] == [None] * len(parts)
    assert store(topic).load_all("eval:", ["eval:0"]) == {"eval:0": {"n": 2}}


def test_missing_parts_or_an_unreadable_checkpoint_are_refused_not_fatal(topic):
    name, producer = topic
    store(topic).save("join:1", {"pending": os.urandom(200_000)})
    first_part = parts_of(latest_values(name), "join:1")[0]
    producer.send(name, key=first_part.encode(), value=None).get(timeout=30)  # a part is gone
    producer.send(name, key=b"join:2", value=b"\x78 neither zlib nor pickle").get(timeout=30)
    producer.send(name, key=b"join:3", value=MANIFEST + b"{not json").get(timeout=30)
    store(topic).save("join:4", {"fine": True})

    reader = store(topic, key=None)  # without a key, join:2 is not refused for its missing MAC
    assert reader.load_all("join:") == {"join:4": {"fine": True}}
    assert reader.refused == 3


def test_parts_no_manifest_names_are_deleted_by_the_next_owner(topic, monkeypatch):
    name, producer = topic
    # a save that died between its parts and its manifest, on two partitions
    for key in ("eval:3", "eval:4"):
        for k in range(2):
            producer.send(name, key=part_key(key, "deadbeef", k).encode(), value=b"x" * 100).get(timeout=30)
    store(topic).save("eval:3", {"n": 3})
    monkeypatch.setattr(checkpoints, "ORPHAN_AGE_S", 0.0)  # else only parts older than ten minutes go

    owner = store(topic)
    assert owner.load_all("eval:", ["eval:3"]) == {"eval:3": {"n": 3}}
    producer.flush()
    values = latest_values(name)
    assert values[part_key("eval:3", "deadbeef", 0)] is None and values[part_key("eval:3", "deadbeef", 1)] is None
    # another worker's partition: not this worker's to clean (its save may still be on its way)
    assert values[part_key("eval:4", "deadbeef", 0)] == b"x" * 100


def test_parts_larger_than_the_brokers_default_segment_are_accepted():
    """The test broker's segments are 16 MiB (``log.segment.bytes``): the checkpoint topic sets
    its own, or a 20 MiB part is refused (RecordListTooLargeError)."""
    require_broker()
    limit = 20 * 1024 * 1024
    ov = namespace({"kafka.max_checkpoint_bytes": limit})
    assert cli("topics", "create", ov=ov).returncode == 0
    producer = make_producer(CLIENT, max_request_size=limit)
    try:
        state = {"weights": os.urandom(limit + limit // 2)}
        saver = CheckpointStore(ov["kafka.topics.checkpoints"], producer, CLIENT, limit)
        saver.save("eval:0", state)
        reader = CheckpointStore(ov["kafka.topics.checkpoints"], producer, CLIENT, limit)
        assert reader.load_all("eval:", ["eval:0"]) == {"eval:0": state}
    finally:
        producer.close()


@pytest.mark.slow
def test_a_worker_killed_mid_stream_resumes_from_checkpoints_saved_in_parts(tmp_path):
    require_broker()
    ov = namespace({"kafka.max_checkpoint_bytes": LIMIT})
    path = tmp_path / "events.jsonl"
    # a partition's state (hundreds of pending impressions each; learners, logs) outgrows a message
    n_imps = write_stream(path, 24_000, seed=3, impressions_per_s=8.0)
    assert cli("topics", "create", ov=ov).returncode == 0

    worker = WorkerProc(ov, tmp_path / "worker1.log")
    replay = replay_in_background(path, ov)
    try:
        worker.wait_ready()

        wait_for(lambda: total(worker.metrics(), "stream_lis_labelled_examples_total") >= 1000, 120,
                 "the first evaluations", worker.alive)
        m = worker.metrics()
        done = {stage: total(m, "stream_lis_checkpoints_total", stage=stage) for stage in ("join", "eval")}
        # two more checkpoints of each stage: the last one saved holds evaluated examples
        wait_for(lambda: all(total(worker.metrics(), "stream_lis_checkpoints_total", stage=stage) >= n + 2
                             for stage, n in done.items()), 120, "checkpoints of both stages", worker.alive)
        assert total(worker.metrics(), "stream_lis_checkpoint_failures_total") == 0
        worker.kill9()
    finally:
        if worker.proc.poll() is None:
            worker.stop()
    log1 = worker.log.read_text()
    assert re.search(r"checkpoint \S+/join:\d+ saved in \d+ parts", log1), "the join stage's state fits one message"
    assert re.search(r"checkpoint \S+/eval:\d+ saved in \d+ parts", log1), "the evaluation stage's state fits one message"

    restarted = WorkerProc(ov, tmp_path / "worker2.log")
    try:
        restarted.wait_ready()
        log2 = restarted.log.read_text()
        assert "join partition" in log2 and "resumed from checkpoint" in log2
        assert re.search(r"eval partition \d+ resumed from checkpoint at offset \d+ \(\d+ arms, [1-9]\d* labelled", log2)
        assert total(restarted.metrics(), "stream_lis_checkpoints_refused_total") == 0
        replay.join(300)
        m = counted_once(restarted, n_imps, 180, "every impression to be labelled after the restart")
        assert total(m, "stream_lis_checkpoint_failures_total") == 0
    finally:
        restarted.stop()
