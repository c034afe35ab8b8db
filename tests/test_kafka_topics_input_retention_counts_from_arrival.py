"""A backfill whose producer stamps each record with its event's own time (Kafka's CreateTime)
must not meet the input topics' time retention: records older than it would be deleted within
minutes of being written, before a worker read them, and vanish without a count. `topics
create` makes the input topics stamp records as the broker stores them (LogAppendTime: the
service reads event time from each record's ``ts``), and says so about an existing input topic
that deletes by its producers' timestamps, leaving it as it is (other consumers may read them)."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from kafka_harness import BOOTSTRAP, cli, namespace, require_broker, wait_for

pytestmark = [pytest.mark.kafka]

WEEK_MS = 7 * 24 * 3600 * 1000
EVENT_TIME_MS = 1_700_000_000_000  # November 2023: far older than any retention


def _timestamp_types(admin: KafkaAdminClient, names: list[str]) -> dict[str, str | None]:
    def read() -> dict[str, str | None]:
        got = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names],
                                     config_filter="all")["topic"]
        return {n: got.get(n, {}).get("message.timestamp.type", {}).get("value") for n in names}

    seen: dict[str, str | None] = {}
    # a topic's configs can read empty for a moment after it is created
    wait_for(lambda: all(seen.update(read()) or seen.values()), 30, "the topics' configs")
    return seen


def test_created_input_topics_stamp_records_on_arrival():
    require_broker()
    ov = namespace()
    created = cli("topics", "create", ov=ov)
    assert created.returncode == 0, created.stderr.decode()
    imps, clicks = ov["kafka.topics.impressions"], ov["kafka.topics.clicks"]
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        assert _timestamp_types(admin, [imps, clicks]) == {imps: "LogAppendTime", clicks: "LogAppendTime"}
    finally:
        admin.close()
    before = time.time() * 1000
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    producer.send(imps, key=b"i1", value=b'{"ts": 1700000000000}', timestamp_ms=EVENT_TIME_MS).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(imps, p) for p in consumer.partitions_for_topic(imps)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        got: list = []
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            for msgs in consumer.poll(timeout_ms=500).values():
                got += msgs
    finally:
        consumer.close()
    assert len(got) == 1
    # retention counts from here: the broker's time of storing it, not the event's
    assert got[0].timestamp_type == 1 and got[0].timestamp >= before - 1000, (got[0].timestamp_type, got[0].timestamp)


def test_an_existing_input_topic_deleting_by_producer_time_is_warned_about_and_left_alone():
    require_broker()
    ov = namespace()
    imps, clicks = ov["kafka.topics.impressions"], ov["kafka.topics.clicks"]
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        # impressions: CreateTime under a week's retention (at risk); clicks: CreateTime kept
        # for ever (no time retention: nothing is deleted by time)
        admin.create_topics([NewTopic(imps, 1, 1, topic_configs={"retention.ms": str(WEEK_MS)}),
                             NewTopic(clicks, 1, 1, topic_configs={"retention.ms": "-1"})])
        assert _timestamp_types(admin, [imps, clicks]) == {imps: "CreateTime", clicks: "CreateTime"}
        created = cli("topics", "create", ov={**ov, "kafka.partitions": 1})
        err = created.stderr.decode()
        assert created.returncode == 0, err
        warned = [line for line in err.splitlines() if "message.timestamp.type=CreateTime" in line]
        assert len(warned) == 1 and f"topic {imps} " in warned[0], err
        assert f"retention.ms={WEEK_MS}" in warned[0] and "older than 7 days" in warned[0]
        assert "LogAppendTime" in warned[0]
        assert _timestamp_types(admin, [imps, clicks]) == {imps: "CreateTime", clicks: "CreateTime"}  # unchanged
    finally:
        admin.close()
