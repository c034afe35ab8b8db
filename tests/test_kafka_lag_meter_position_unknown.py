"""A consumer position kafka-python could not learn (``None``) is a broker not answering.

kafka-python 3.0's ``position`` swallows its own timeout while the broker does not answer the
offset reset it waits for, and returns ``None``. The lag meter subtracted it from an end
offset: the ``TypeError`` stopped the stage (and the worker) just after an assignment made
while the broker went away. ``topics.position`` turns it into the client's timeout error,
which the meter, like every reader of positions, takes as "the broker does not answer"."""

from __future__ import annotations

import logging

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError

from stream_lis.runtime.kafka.topics import LagMeter, position


class _Consumer:
    """What the meter asks of a consumer, with positions the test sets (None: unknown)."""

    def __init__(self, positions: dict[TopicPartition, int | None], end: int = 100) -> None:
        self.positions, self.end = positions, end

    def assignment(self):
        return set(self.positions)

    def end_offsets(self, tps, timeout_ms=None):
        return {tp: self.end for tp in tps}

    def position(self, tp, timeout_ms=None):
        return self.positions[tp]


def test_an_unknown_position_is_the_client_timeout():
    tp = TopicPartition("imps", 0)
    assert position(_Consumer({tp: 40}), tp) == 40
    with pytest.raises(KafkaTimeoutError, match="no position for imps/0"):
        position(_Consumer({tp: None}), tp, timeout_ms=5)


def test_the_lag_meter_takes_an_unknown_position_as_the_broker_not_answering(caplog):
    tp = TopicPartition("imps", 0)
    consumer = _Consumer({tp: 40})
    meter = LagMeter(consumer, logging.getLogger("test.lag"))
    assert meter.measure() and meter.lag == {("imps", 0): 60}
    consumer.positions[tp] = None
    with caplog.at_level(logging.WARNING, logger="test.lag"):
        assert meter.measure() is False  # no TypeError
    assert not meter.answering and meter.lag == {("imps", 0): 60}  # the last lag kept
    assert any("the broker does not answer" in r.getMessage() for r in caplog.records)
    consumer.positions[tp] = 90
    assert meter.measure() and meter.answering and meter.lag == {("imps", 0): 10}
