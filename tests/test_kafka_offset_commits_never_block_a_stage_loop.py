"""A stage's loop commits its checkpointed offsets without waiting: a waiting commit sent
just as the broker stopped answering held the evaluation loop for the client's 30 s request
timeout, and a worker with a short ``kafka.stall_timeout`` failed ``/healthz`` in the middle of
an outage it was meant to ride out (seen in the frozen-broker test). A stopping stage still
waits, within a bound, so its last commit lands before the consumer closes. Failures are
logged, from the callback, not raised: the checkpoint, not the commit, is what a restart
resumes from."""

from __future__ import annotations

import logging

from kafka import TopicPartition
from kafka.errors import CommitFailedError

from stream_lis.runtime.kafka.topics import STOP_COMMIT_S, commit_offsets

log = logging.getLogger("test.commits")


class Consumer:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def commit_async(self, offsets, callback=None):
        self.calls.append(("async", {tp: o.offset for tp, o in offsets.items()}))
        callback(offsets, CommitFailedError("rebalanced"))  # as the next poll would

    def commit(self, offsets, timeout_ms=None):
        self.calls.append(("wait", {tp: o.offset for tp, o in offsets.items()}, timeout_ms))
        raise TimeoutError("broker away")


def test_the_loop_sends_its_commit_and_a_stopping_stage_waits_within_a_bound(caplog):
    c, tp = Consumer(), TopicPartition("impressions", 3)
    with caplog.at_level(logging.WARNING, logger="test.commits"):
        commit_offsets(c, {tp: 42}, log)
        commit_offsets(c, {tp: 43}, log, wait_s=STOP_COMMIT_S)
        commit_offsets(c, {}, log)  # nothing to commit: no call
    assert c.calls == [("async", {tp: 42}), ("wait", {tp: 43}, int(STOP_COMMIT_S * 1000))]
    said = [r.getMessage() for r in caplog.records]
    assert said == ["offset commit failed: CommitFailedError: CommitFailedError: rebalanced",
                    "offset commit failed: broker away"], said
