"""A restore that meets the broker just back from an outage reads the checkpoint topic again.

A stage restores its partitions' checkpoints in its rebalance listener. Just after a broker
outage the broker can answer before it knows its cluster (a metadata response with no
brokers), or a request can time out once more: the read raised, the listener failed, and the
stage and the worker with it (seen with the broker frozen while a stage was in a group join).
A retriable client error (or no position, which kafka-python gives for a timeout) now has
the whole topic read again, for up to half the rebalance timeout (``READ_RETRY_S`` at most);
any other error is raised as before. Checked against the real broker, with the errors the
client raised then injected once into the store's reading consumer.
"""

from __future__ import annotations

import logging

import pytest
from kafka import KafkaConsumer
from kafka.errors import KafkaTimeoutError, MetadataEmptyBrokerList, TopicAuthorizationFailedError

from kafka_harness import BOOTSTRAP, cli, namespace, require_broker
from stream_lis.runtime.kafka import checkpoints
from stream_lis.runtime.kafka.checkpoints import CheckpointStore
from stream_lis.runtime.kafka.produce import make_producer

pytestmark = [pytest.mark.kafka]

CLIENT = {"bootstrap_servers": BOOTSTRAP}


@pytest.fixture
def saved():
    """A store on its own topic, holding the checkpoints of two join partitions."""
    require_broker()
    ov = namespace()
    assert cli("topics", "create", ov=ov).returncode == 0
    producer = make_producer(CLIENT)
    store = CheckpointStore(ov["kafka.topics.checkpoints"], producer, CLIENT, 1 << 20, None)
    store.save("join:0", {"n": 0})
    store.save("join:1", {"n": 1})
    yield store
    producer.close()


def _failing_once(monkeypatch, method: str, error: Exception | None) -> list[str]:
    """The store's reading consumers raise ``error`` from ``method`` once (the first call of
    all); ``None``: the call gives ``None`` once, as kafka-python's ``position`` does when
    the broker does not answer its offset reset in time."""
    raised: list[str] = []

    class Once(KafkaConsumer):
        def __getattribute__(self, name):
            attr = super().__getattribute__(name)
            if name == method and not raised:
                def fail(*args, **kwargs):
                    raised.append(name)
                    if error is None:
                        return None
                    raise error
                return fail
            return attr

    monkeypatch.setattr(checkpoints, "KafkaConsumer", Once)
    monkeypatch.setattr(checkpoints, "READ_RETRY_PAUSE_S", 0.05)
    return raised


@pytest.mark.parametrize("method,error", [
    ("partitions_for_topic", MetadataEmptyBrokerList("MetadataResponse(brokers=[], controller_id=-1)")),
    ("end_offsets", KafkaTimeoutError("Failed to get offsets by timestamps in 30000 ms")),
    ("position", None),
])
def test_a_retriable_error_has_the_topic_read_again(saved, monkeypatch, caplog, method, error):
    raised = _failing_once(monkeypatch, method, error)
    beats: list[int] = []
    with caplog.at_level(logging.WARNING, logger="stream_lis.checkpoints"):
        out = saved.load_all("join:", ["join:0", "join:1"], lambda: beats.append(1))
    assert raised == [method]  # the error did happen
    assert out == {"join:0": {"n": 0}, "join:1": {"n": 1}}
    said = [r.getMessage() for r in caplog.records if r.name == "stream_lis.checkpoints"]
    cause = type(error).__name__ if error is not None else "KafkaTimeoutError: no position for"
    assert len(said) == 1 and f"failed ({cause}" in said[0] and "reading it again" in said[0], said
    assert beats  # progress said while it waited: no stall


def test_an_error_that_will_not_pass_is_raised(saved, monkeypatch):
    _failing_once(monkeypatch, "partitions_for_topic", TopicAuthorizationFailedError("not allowed"))
    with pytest.raises(TopicAuthorizationFailedError):
        saved.load_all("join:", ["join:0"])


def test_the_broker_not_back_within_the_retry_bound_raises(saved, monkeypatch):
    saved.read_retry_s = 0.0  # the worker gives half its rebalance timeout, up to READ_RETRY_S
    _failing_once(monkeypatch, "partitions_for_topic", MetadataEmptyBrokerList("no brokers"))
    with pytest.raises(MetadataEmptyBrokerList):
        saved.load_all("join:", ["join:0"])


def test_a_topic_without_partitions_in_the_metadata_is_read_again(saved, monkeypatch, caplog):
    """kafka-python gives an empty set, not an error, for a topic whose metadata came with an
    error (leaders not elected yet, not authorised) or that is missing: read as "no
    checkpoints", every partition would have started over without its state."""
    raised = _failing_once(monkeypatch, "partitions_for_topic", None)  # None: ``or set()`` in the store
    with caplog.at_level(logging.WARNING, logger="stream_lis.checkpoints"):
        out = saved.load_all("join:", ["join:0", "join:1"])
    assert raised == ["partitions_for_topic"]
    assert out == {"join:0": {"n": 0}, "join:1": {"n": 1}}
    said = [r.getMessage() for r in caplog.records if r.name == "stream_lis.checkpoints"]
    assert len(said) == 1 and "has no partitions in the broker's metadata" in said[0], said


def test_a_missing_checkpoint_topic_fails_the_restore_instead_of_starting_over(monkeypatch):
    """A checkpoint topic that is not there (deleted, another name) fails the restore after
    the retry bound; the worker's restart makes the topic if it is missing."""
    require_broker()
    monkeypatch.setattr(checkpoints, "READ_RETRY_PAUSE_S", 0.05)
    producer = make_producer(CLIENT)
    try:
        store = CheckpointStore(namespace()["kafka.topics.checkpoints"], producer, CLIENT, 1 << 20, None,
                                read_retry_s=0.5)
        with pytest.raises(checkpoints.CheckpointTopicUnavailable, match="has no partitions"):
            store.load_all("join:", ["join:0"])
    finally:
        producer.close()
