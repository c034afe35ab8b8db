"""An input topic gains a partition while a stage's consumer polls with short timeouts: the
rebalance that this starts must end with the partitions assigned again, the new one included.

kafka-python 3.0 left such a member half-joined: its partitions revoked, the join task ended
unread, no error, the stage owning nothing for as long as it ran (``rejoin`` says why). The
worker installs ``stream_lis.runtime.kafka.rejoin``; here a bare consumer, polled with
timeout 0 so that no join can finish within a poll, shows it on the real broker. And the
patch reads a finished join once only: one that failed gives way to a new join."""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Iterator

import pytest
from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import KafkaTimeoutError
from kafka.future import Future

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


@contextlib.contextmanager
def _joined(**consumer_kw) -> Iterator[tuple[KafkaAdminClient, KafkaConsumer, _Told, str]]:
    """A topic of 2 partitions on the real broker and a consumer in a group of its own, both
    partitions assigned; all of it closed and deleted afterwards."""
    require_broker()
    topic = f"rejoin-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic(topic, 2, 1)])
    told = _Told()
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=topic, session_timeout_ms=10_000,
                             heartbeat_interval_ms=1_000, **consumer_kw)
    try:
        consumer.subscribe([topic], listener=told)
        _poll_until(consumer, lambda: ("assigned", [0, 1]) in told.calls, 30, poll_ms=200)
        assert ("assigned", [0, 1]) in told.calls, told.calls
        yield admin, consumer, told, topic
    finally:
        consumer.close()
        admin.delete_topics([topic])
        admin.close()


def test_a_partition_added_while_polling_briefly_is_assigned_with_the_others():
    with _joined(metadata_max_age_ms=300) as (admin, consumer, told, topic):
        admin.create_partitions({topic: NewPartitions(total_count=3)})
        _poll_until(consumer, lambda: ("assigned", [0, 1, 2]) in told.calls, 30, poll_ms=0)

        # Every revocation is followed by an assignment, the last one of all three partitions
        # (a join read late may first give the old assignment back; the member then rejoins).
        after = told.calls[told.calls.index(("assigned", [0, 1])) + 1:]
        assert after and after[-1] == ("assigned", [0, 1, 2]), after
        assert [kind for kind, _ in after] == ["revoked", "assigned"] * (len(after) // 2), after
        assert sorted(tp.partition for tp in consumer.assignment()) == [0, 1, 2]


class _FailsOnce(RangePartitionAssignor):
    """The range assignor, raising once when told to (an assignor's own error)."""

    name = "range"
    fail = False

    @classmethod
    def assign(cls, cluster, members):
        if cls.fail:
            cls.fail = False
            raise RuntimeError("the assignor failed once")
        return super().assign(cluster, members)


@pytest.mark.parametrize("failure", ["join timed out", "assignor raised"])
def test_a_join_that_failed_is_followed_by_a_new_one(failure):
    """A finished join is read once, not forever: one whose JoinGroup timed out (kafka-python
    takes that error for the poll's own timeout) or whose assignor raised (the error goes to
    the caller once) gives way to a new join, which assigns the partitions again."""
    from kafka.protocol.consumer import JoinGroupRequest  # kafka-python 3.0's layout (the fixture checked)

    with _joined(partition_assignment_strategy=[_FailsOnce]) as (_, consumer, told, _topic):
        coordinator = consumer._coordinator
        manager, send = coordinator._manager, coordinator._manager.send
        armed = [failure == "join timed out"]

        def failing_send(request, *args, **kwargs):  # as a request on a connection whose connect timed out
            if armed[0] and isinstance(request, JoinGroupRequest):
                armed[0] = False
                return Future().failure(KafkaTimeoutError("Connection timed out"))
            return send(request, *args, **kwargs)

        try:
            manager.send = failing_send
            _FailsOnce.fail = failure == "assignor raised"
            coordinator.request_rejoin()
            start, raised = len(told.calls), []
            end = time.monotonic() + 30
            while time.monotonic() < end and not (told.calls[start:] and told.calls[-1][0] == "assigned"):
                try:
                    consumer.poll(timeout_ms=200)
                except RuntimeError as exc:
                    raised.append(str(exc))
            assert told.calls[start:] == [("revoked", [0, 1]), ("assigned", [0, 1])], told.calls[start:]
            assert raised == (["the assignor failed once"] if failure == "assignor raised" else [])
            assert not armed[0] and not _FailsOnce.fail  # the failure did happen
        finally:
            manager.send = send
            _FailsOnce.fail = False


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
