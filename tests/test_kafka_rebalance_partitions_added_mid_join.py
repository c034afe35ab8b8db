"""An input topic gains a partition while a stage's consumer polls with short timeouts: the
rebalance that this starts must end with the partitions assigned again, the new one included.

kafka-python 3.0 left such a member half-joined: its partitions revoked, the join task ended
unread, no error, the stage owning nothing for as long as it ran (``rejoin`` says why). The
worker installs ``stream_lis.runtime.kafka.rejoin``; here a bare consumer, polled with
timeout 0 so that no join can finish within a poll, shows it on the real broker."""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic

from kafka_harness import BOOTSTRAP, require_broker
from stream_lis.runtime.kafka import rejoin

pytestmark = pytest.mark.kafka


@pytest.fixture(autouse=True)
def _installed():
    why = rejoin.unavailable()
    if why is not None:
        pytest.skip(f"kafka-python's group join is left as it is here: {why}")
    was = rejoin.installed()
    assert rejoin.install()
    yield
    if not was:
        rejoin.uninstall()


class _Told(ConsumerRebalanceListener):
    """What the consumer told its listener, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []

    def on_partitions_revoked(self, revoked):
        self.calls.append(("revoked", sorted(tp.partition for tp in revoked)))

    def on_partitions_assigned(self, assigned):
        self.calls.append(("assigned", sorted(tp.partition for tp in assigned)))


def _poll_until(consumer: KafkaConsumer, done, timeout_s: float, poll_ms: int) -> None:
    end = time.monotonic() + timeout_s
    while not done() and time.monotonic() < end:
        consumer.poll(timeout_ms=poll_ms)
        time.sleep(0.02)


def test_a_partition_added_while_polling_briefly_is_assigned_with_the_others():
    require_broker()
    topic = f"rejoin-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic(topic, 2, 1)])
    told = _Told()
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=topic, metadata_max_age_ms=300,
                             session_timeout_ms=10_000, heartbeat_interval_ms=1_000)
    try:
        consumer.subscribe([topic], listener=told)
        _poll_until(consumer, lambda: ("assigned", [0, 1]) in told.calls, 30, poll_ms=200)
        assert ("assigned", [0, 1]) in told.calls, told.calls

        admin.create_partitions({topic: NewPartitions(total_count=3)})
        _poll_until(consumer, lambda: ("assigned", [0, 1, 2]) in told.calls, 30, poll_ms=0)

        # Every revocation is followed by an assignment, the last one of all three partitions
        # (a join read late may first give the old assignment back; the member then rejoins).
        after = told.calls[told.calls.index(("assigned", [0, 1])) + 1:]
        assert after and after[-1] == ("assigned", [0, 1, 2]), after
        assert [kind for kind, _ in after] == ["revoked", "assigned"] * (len(after) // 2), after
        assert sorted(tp.partition for tp in consumer.assignment()) == [0, 1, 2]
    finally:
        consumer.close()
        admin.delete_topics([topic])
        admin.close()


def test_uninstall_gives_back_kafka_pythons_own_methods():
    from kafka.coordinator.base import BaseCoordinator
    from kafka.coordinator.consumer import ConsumerCoordinator

    assert ConsumerCoordinator.need_rejoin is rejoin._need_rejoin
    rejoin.uninstall()
    try:
        assert not rejoin.installed()
        assert ConsumerCoordinator.need_rejoin is not rejoin._need_rejoin
        assert BaseCoordinator.join_group_async is not rejoin._join_group_async
    finally:
        rejoin.install()
