"""A restore or save that outlasts the consumer's session timeout does not cost the worker its
group membership. At the memory bounds a partition's checkpoint takes seconds to load (about
4 s for a join partition holding a million pending impressions), and a worker taking several
partitions over passes the 10 s session timeout. Run on the consumer's IO thread, the listener
kept that thread from sending heartbeats: the broker dropped the member, the group rebalanced,
the member rejoined and loaded its partitions again, just as slowly, and the group never
settled. The stages' listeners now run on a thread of their own while the IO thread goes on.

Checked against the real broker: a join-stage worker whose every checkpoint load takes longer
than the session timeout takes its partitions over once, and stays their owner. And without
one: the listener hands the IO loop a sleep for as long as the stage's work runs, and the
stage's errors reach the loop (which logs them and fails the rebalance, as before)."""

from __future__ import annotations

import threading
import time

import pytest
from kafka.net.selector import KernelEvent

from kafka_harness import BOOTSTRAP, cli, namespace, require_broker, wait_for
from stream_lis.config import load_config
from stream_lis.runtime.kafka.rebalance import OffLoopListener, _drive, listener_for
from stream_lis.runtime.kafka.worker import Worker

#: The stages' consumer session timeout (``join_stage``/``eval_stage``: 10 s), and more.
SLOW_LOAD_S = 13.0


class Stage:
    """A stage whose assignment work waits for the test; its revocation fails."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.assigned: list[tuple[list[int], str]] = []

    def on_partitions_assigned(self, assigned):
        assert self.release.wait(10)
        self.assigned.append((sorted(assigned), threading.current_thread().name))

    def on_partitions_revoked(self, revoked):
        raise RuntimeError("checkpoint refused")


def test_the_io_loop_sleeps_while_the_stage_restores():
    stage = Stage()
    coro = OffLoopListener(stage, "join").on_partitions_assigned({3, 1})
    events = [coro.send(None) for _ in range(5)]  # the stage is still at work: the loop is free
    assert all(isinstance(e, KernelEvent) and e.method == "_sleep" for e in events)
    assert stage.assigned == []
    stage.release.set()
    _drive(coro)
    assert stage.assigned == [([1, 3], "join-partitions-assigned")]  # done, on a thread of its own


def test_an_error_of_the_stage_reaches_the_io_loop():
    with pytest.raises(RuntimeError, match="checkpoint refused"):
        _drive(OffLoopListener(Stage(), "eval").on_partitions_revoked({0}))


def test_the_consumer_gets_the_listener_that_keeps_its_loop_free():
    stage = Stage()
    listener = listener_for(stage, "join")
    assert isinstance(listener, OffLoopListener) and listener.stage is stage


@pytest.mark.kafka
def test_a_restore_longer_than_the_session_timeout_keeps_the_partitions():
    require_broker()
    ov = namespace({"kafka.partitions": 2})
    assert cli("topics", "create", ov=ov).returncode == 0
    cfg = load_config(None, {**ov, "kafka.bootstrap_servers": BOOTSTRAP})
    worker = Worker(cfg, port=None, create=False, stages=("join",))
    loads: list[float] = []
    real_load = worker.store.load_all

    def slow_load(prefix, keys, progress=None):
        loads.append(time.monotonic())
        time.sleep(SLOW_LOAD_S)  # every restore as slow as a large one
        return real_load(prefix, keys, progress)

    worker.store.load_all = slow_load
    worker.start()
    try:
        wait_for(worker.join.recovered.is_set, 60, "the join stage took its partitions over")
        assert worker.failed is None
        # Past another session timeout: a member the broker dropped during the restore learns
        # it at its next heartbeat and rejoins (a second assignment, a second load).
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline and worker.join.rebalances == 1 and len(loads) == 1:
            time.sleep(0.2)
        assert (worker.join.rebalances, len(loads)) == (1, 1), \
            f"{worker.join.rebalances} assignments, {len(loads)} restores: the member was dropped during the restore"
        assert sorted(worker.join.labellers) == [0, 1]
    finally:
        worker.stop()
        worker.wait()


def test_kafka_pythons_blocking_listener_warning_is_dropped_for_ours_only(caplog):
    # kafka-python warns that a listener over 1 s "blocks the consumer event loop (including
    # heartbeats)": not true of the off-loop listener, whose own line says heartbeats went on.
    import logging

    listener_for(object(), "join")  # installs the filter
    kafka_log = logging.getLogger("kafka.coordinator.consumer")
    msg = ("Rebalance listener %s.%s for group %s took %.3fs. Sync listeners block the consumer event loop "
           "(including heartbeats) -- consider AsyncConsumerRebalanceListener or wrap blocking work in a worker thread.")
    with caplog.at_level(logging.WARNING, logger="kafka.coordinator.consumer"):
        kafka_log.warning(msg, "OffLoopListener", "on_partitions_assigned", "g", 13.0)
        kafka_log.warning(msg, "SomeoneElsesListener", "on_partitions_assigned", "g", 13.0)
    assert [r.args[0] for r in caplog.records] == ["SomeoneElsesListener"]
