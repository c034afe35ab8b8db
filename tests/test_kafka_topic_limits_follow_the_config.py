"""The size limits of topics that already exist follow what the release writes. Topics are
created once: a checkpoint topic made by an older release (no ``segment.bytes`` of its own, on
a broker with small segments), or before ``kafka.max_checkpoint_bytes`` was raised, refused
every checkpoint part over its old limit for as long as it lived. ``topics create`` (and a
worker at start) now raises such limits, and never lowers one.

Checked against the real broker, through the command line."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from kafka_harness import BOOTSTRAP, cli, namespace, require_broker

pytestmark = [pytest.mark.kafka]

SMALL, LARGE = 64 * 1024, 1024 * 1024


def limits(admin: KafkaAdminClient, topic: str) -> dict[str, int]:
    got = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")["topic"][topic]
    return {k: int(got[k]["value"]) for k in ("max.message.bytes", "segment.bytes")}


def create(ov: dict, max_checkpoint_bytes: int) -> dict[str, str]:
    r = cli("topics", "create", ov={**ov, "kafka.max_checkpoint_bytes": max_checkpoint_bytes})
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return dict(line.split(": ", 1) for line in r.stdout.decode().splitlines())


def test_existing_topic_limits_are_raised_to_what_the_config_writes_and_never_lowered():
    require_broker()
    ov = namespace()
    topic = ov["kafka.topics.checkpoints"]
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP.split(","))
    try:
        assert create(ov, SMALL)[topic] == "created"
        # As an older release left it: segments of the broker's default (16 MiB here).
        assert admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"segment.bytes": str(16 << 20)})],
                                   raise_on_unknown=False)["topic"][topic] == "OK"
        assert limits(admin, topic) == {"max.message.bytes": SMALL, "segment.bytes": 16 << 20}

        out = create(ov, LARGE)
        assert out[topic] == f"exists; max.message.bytes {SMALL} -> {LARGE}, segment.bytes {16 << 20} -> {1 << 30}"
        assert limits(admin, topic) == {"max.message.bytes": LARGE, "segment.bytes": 1 << 30}
        assert out[ov["kafka.topics.impressions"]] == "exists"  # nothing of theirs is below

        # A smaller configured limit leaves the larger one in place (parts are cut smaller).
        assert create(ov, SMALL)[topic] == "exists"
        assert limits(admin, topic) == {"max.message.bytes": LARGE, "segment.bytes": 1 << 30}
    finally:
        admin.close()
