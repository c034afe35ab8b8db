"""What the topic commands say about topics as the broker has them: a producer run before
`topics create` makes the topics as it would (not with the broker's defaults), `topics create`
names an existing topic with fewer partitions than configured (it changes none), and
`topics describe` shows the backlog of a group that has committed nothing, and fails when a
topic is missing. Against the real broker, through the command line."""

from __future__ import annotations

import re

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from kafka_harness import BOOTSTRAP, cli, namespace, require_broker

pytestmark = [pytest.mark.kafka]


@pytest.fixture
def admin():
    require_broker()
    a = KafkaAdminClient(bootstrap_servers=BOOTSTRAP.split(","))
    yield a
    a.close()


def partitions(admin: KafkaAdminClient, topic: str) -> int:
    return len(admin.describe_topics([topic])[0]["partitions"])


def test_produce_before_topics_create_makes_the_topics_as_topics_create_does(admin):
    ov = namespace({"kafka.partitions": 3})
    proc = cli("produce", "--impressions", "200", ov=ov, text=True)
    assert proc.returncode == 0, proc.stderr
    imp = ov["kafka.topics.impressions"]
    assert re.search(rf"created topics .*{imp}.* as `stream-lis topics create` does \(kafka.partitions 3\)", proc.stderr)
    assert partitions(admin, imp) == partitions(admin, ov["kafka.topics.clicks"]) == 3
    got = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, imp)], config_filter="all")["topic"][imp]
    assert got["message.timestamp.type"]["value"] == "LogAppendTime"
    # the second run finds them: nothing created, nothing said
    again = cli("produce", "--impressions", "50", ov=ov, text=True)
    assert again.returncode == 0 and "created topics" not in again.stderr, again.stderr


def test_create_names_a_topic_with_fewer_partitions_than_configured_and_changes_none(admin):
    ov = namespace({"kafka.partitions": 2})
    assert cli("topics", "create", ov=ov).returncode == 0
    imp = ov["kafka.topics.impressions"]
    proc = cli("topics", "create", ov={**ov, "kafka.partitions": 6}, text=True)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith(f"{imp}:"))
    assert "exists; 2 partitions, not the 6 configured: not changed here" in line, line
    # the command names the broker this one talked to (--bootstrap), and for the input topics both
    assert f"kafka-topics.sh --bootstrap-server {BOOTSTRAP} --alter --topic {imp} --partitions 6" in line
    assert line.endswith("impressions and clicks together)")
    lab = next(x for x in proc.stdout.splitlines() if x.startswith(f"{ov['kafka.topics.labelled']}:"))
    assert "not changed here" in lab and "impressions and clicks" not in lab, lab
    assert partitions(admin, imp) == 2
    # the checkpoint topic has one partition by design: never named
    ck = next(x for x in proc.stdout.splitlines() if x.startswith(f"{ov['kafka.topics.checkpoints']}:"))
    assert ck.endswith(": exists"), ck


def test_describe_shows_the_backlog_of_a_group_that_committed_nothing_and_fails_on_a_missing_topic(admin):
    ov = namespace({"kafka.partitions": 2})
    missing = cli("topics", "describe", ov=ov, text=True)
    assert missing.returncode == 1 and "missing (run `stream-lis topics create`)" in missing.stdout
    assert cli("topics", "create", ov=ov).returncode == 0
    assert cli("produce", "--impressions", "300", ov=ov).returncode == 0
    proc = cli("topics", "describe", ov=ov, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    imp = ov["kafka.topics.impressions"]
    rows = [x for x in proc.stdout.splitlines() if x.startswith(f"{imp}[")]
    assert len(rows) == 2
    backlog = 0
    for row in rows:
        m = re.fullmatch(rf"{imp}\[\d\] end (\d+)  group {ov['kafka.group_id']}-join committed - lag (\d+) "
                         r"\(nothing committed: from the beginning\)", row)
        assert m and m.group(1) == m.group(2), row
        backlog += int(m.group(2))
    assert backlog == 300
