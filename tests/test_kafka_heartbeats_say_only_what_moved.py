"""Heartbeats tell an evaluation partition an input partition's clock only when it moved.

Every ``kafka.heartbeat_interval`` (200 ms) the join stage sent each input partition's
watermark to every ``labelled`` partition, moved or not: 5 messages a second per pair, about
5,000 a second (some 20 GB a day, kept for the topic's retention) at 32 x 32 partitions of an
idle deployment. A heartbeat now goes where the clock it carries differs from what that
partition was last told (by records or a heartbeat), and a clock that stands still is told
again every ``kafka.heartbeat_repeat``, so a new owner without a checkpoint still learns it.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from types import SimpleNamespace

import pytest
from kafka import KafkaConsumer, TopicPartition

from kafka_harness import BOOTSTRAP, WorkerProc, cli, namespace, require_broker, wait_for
from stream_lis.config import ConfigError, load_config
from stream_lis.runtime.liveness import Membership, Pulse
from stream_lis.runtime.kafka import join_stage
from stream_lis.runtime.kafka.join_stage import JoinStage
from stream_lis.runtime.kafka.wire import Envelope, decode_envelope


class _Future:
    def __init__(self) -> None:
        self.errbacks: list = []

    def add_errback(self, f, *args) -> None:
        self.errbacks.append(functools.partial(f, *args))

    def fail(self) -> None:
        for f in self.errbacks:
            f(RuntimeError("delivery failed"))


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[int, Envelope]] = []
        self.futures: list[_Future] = []

    def send(self, topic: str, partition: int, value: bytes) -> _Future:
        self.sent.append((partition, decode_envelope(value)))
        self.futures.append(_Future())
        return self.futures[-1]

    def take(self) -> list[tuple[int, int, int]]:
        """(labelled partition, input partition, watermark) sent since the last take."""
        out = sorted((p, env.src, env.watermark) for p, env in self.sent)
        self.sent.clear()
        return out


def _stage(repeat_s: float = 5.0) -> tuple[JoinStage, _Producer]:
    """Two input partitions, three labelled ones; no consumer, no broker."""
    st = JoinStage.__new__(JoinStage)
    st.producer = prod = _Producer()
    st.t = SimpleNamespace(labelled="labelled")
    st.labellers = {0: SimpleNamespace(watermark=SimpleNamespace(value=1000)),
                    1: SimpleNamespace(watermark=SimpleNamespace(value=2000))}
    st.ckpt_wm = {0: 0, 1: 0}
    st._ended, st._origin, st._labelled_parts = {}, 7, 3
    st._told, st._repeat_s, st._eager = {}, repeat_s, {}
    st._idle = lambda p: False
    st.delivery = SimpleNamespace(watch=lambda *a: None)
    return st, prod


def test_an_unchanged_clock_is_not_told_again_until_the_repeat():
    st, prod = _stage()
    st._heartbeat()
    assert prod.take() == [(p, src, wm) for p in range(3) for src, wm in ((0, 1000), (1, 2000))]
    st._heartbeat()
    assert prod.take() == []  # nothing moved
    st.labellers[1].watermark.value = 2500
    st._heartbeat()
    assert prod.take() == [(0, 1, 2500), (1, 1, 2500), (2, 1, 2500)]  # only the clock that moved


def test_an_idle_flag_or_a_checkpoint_is_news_too():
    st, prod = _stage()
    st._heartbeat()
    prod.take()
    st._idle = lambda p: p == 0
    st._heartbeat()
    assert [(p, src) for p, src, _ in prod.take()] == [(0, 0), (1, 0), (2, 0)]
    st.ckpt_wm[1] = 2000
    st._heartbeat()
    assert [(p, src) for p, src, _ in prod.take()] == [(0, 1), (1, 1), (2, 1)]


def test_records_with_the_clock_spare_that_partition_its_heartbeat():
    st, prod = _stage()
    st._heartbeat()
    prod.take()
    st.labellers[0].watermark.value = 1500
    st._send_envelope(2, Envelope(0, 1500, [], False, 0, None, 7), 1000)  # (empty records: the path is the same)
    prod.take()
    st._heartbeat()
    assert prod.take() == [(0, 0, 1500), (1, 0, 1500)]  # partition 2 has it already


def test_a_standing_clock_is_repeated_after_heartbeat_repeat():
    st, prod = _stage(repeat_s=0.3)
    st._heartbeat()
    prod.take()
    st._heartbeat()
    assert prod.take() == []
    time.sleep(0.35)
    st._heartbeat()
    assert len(prod.take()) == 6  # every pair again


def test_a_partition_assigned_again_tells_its_clock_every_heartbeat_for_a_while():
    """Another worker may have told other clocks while it was away, and envelopes from the
    previous owner can land after the new owner's: its clock goes every heartbeat for
    ``ASSIGNED_EAGER_S`` after the assignment, then only when news again."""
    st, prod = _stage()
    st.cfg, st.lock, st.pulse, st.rebalances = load_config(None, {}), threading.Lock(), Pulse(), 0
    st.membership = Membership()
    st.lag_meter = SimpleNamespace(answering=False, log=logging.getLogger("test"))  # no checkpoint on revocation
    st.store = SimpleNamespace(load_all=lambda *a: {})
    st.t = SimpleNamespace(labelled="labelled", impressions="imps", clicks="clicks")
    st.recovered, st._dead_letter = threading.Event(), lambda *a: None
    for d in ("last_input", "held", "read_ts", "read_at", "next_off"):
        setattr(st, d, {p: {} for p in st.labellers})
    st._heartbeat()
    prod.take()
    st.on_partitions_revoked([TopicPartition("imps", 1)])
    st.on_partitions_assigned([TopicPartition("imps", 0), TopicPartition("imps", 1)])
    assert st.labellers[1].watermark.value < 0  # a new labeller (no checkpoint): its own clock
    st._idle = lambda p: False
    st._heartbeat()
    assert [(p, src) for p, src, _ in prod.take()] == [(0, 1), (1, 1), (2, 1)]
    st._heartbeat()  # nothing moved, but partition 1 was just assigned: told again
    assert [(p, src) for p, src, _ in prod.take()] == [(0, 1), (1, 1), (2, 1)]
    st._eager[1] = time.monotonic() - 1  # the eager time is over
    st._heartbeat()
    assert prod.take() == []


def test_a_heartbeat_that_failed_is_sent_again_at_the_next_one():
    st, prod = _stage()
    st._heartbeat()
    prod.take()
    prod.futures[0].fail()  # partition 0's heartbeat of input partition 0 never arrived
    st._heartbeat()
    assert prod.take() == [(0, 0, 1000)]


def test_a_repeat_shorter_than_the_interval_is_refused():
    with pytest.raises(ConfigError, match=r"kafka.heartbeat_repeat \(100ms\) must be at least kafka.heartbeat_interval"):
        load_config(None, {"kafka.heartbeat_repeat": "100ms"})


@pytest.mark.kafka
@pytest.mark.slow
def test_an_idle_deployment_sends_a_heartbeat_per_pair_per_repeat(tmp_path):
    """On the broker: a worker with nothing to read, 2 input x 2 labelled partitions,
    heartbeats every 200 ms and repeats every 2 s. Just after its partitions were assigned
    it tells their clocks every heartbeat; from ``ASSIGNED_EAGER_S`` on, about 2 messages per
    pair reach ``labelled`` in 4 s (20 per pair before)."""
    require_broker()
    ov = namespace({"kafka.partitions": 2, "kafka.heartbeat_interval": "200ms", "kafka.heartbeat_repeat": "2s"})
    assert cli("topics", "create", ov=ov).returncode == 0
    worker = WorkerProc(ov, tmp_path / "worker.log")
    labelled = [TopicPartition(ov["kafka.topics.labelled"], p) for p in range(2)]
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP)
    pairs = 4

    def sent_in(seconds: float) -> tuple[int, float]:
        before, t0 = ends(), time.monotonic()
        time.sleep(seconds)
        return ends() - before, time.monotonic() - t0

    try:
        worker.wait_ready()
        ready = time.monotonic()
        ends = lambda: sum(consumer.end_offsets(labelled).values())  # noqa: E731
        wait_for(lambda: ends() >= pairs, 30, "the first heartbeats", worker.alive)
        eager, dt = sent_in(3)
        assert eager >= pairs * dt / 0.2 / 2, eager  # every heartbeat (with room for a slow machine)
        time.sleep(max(0.0, ready + join_stage.ASSIGNED_EAGER_S + 1 - time.monotonic()))
        sent, dt = sent_in(4)
        worker.alive()
        # Each pair is repeated once or twice in 4 s (the repeat is 2 s); every heartbeat
        # would be 20 per pair.
        assert pairs <= sent <= pairs * (dt / 2 + 1), sent
    finally:
        consumer.close()
        worker.stop()
