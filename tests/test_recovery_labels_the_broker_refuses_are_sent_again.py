"""Output the broker refuses for good (here: the labelled topic's ``max.message.bytes``
lowered under a running worker; likewise a missing permission or an outage longer than the
producer's delivery timeout) stops the worker before any checkpoint claims the input it came
from. Once the topic takes the messages again, a restarted worker resumes from its last
checkpoint and sends them: every impression is counted once, none lost."""

from __future__ import annotations

import re

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from kafka_harness import BOOTSTRAP, WorkerProc, cli, counted_once, fresh_input, require_broker, total, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _max_message_bytes(topic: str, value: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP.split(","))
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(value)})])
    finally:
        admin.close()


def test_labels_the_broker_refused_are_sent_again_after_a_restart(tmp_path):
    require_broker()
    ov, path, n_imps = fresh_input(tmp_path, 6_000, seed=4)
    labelled = ov["kafka.topics.labelled"]
    worker = WorkerProc(ov, tmp_path / "worker1.log")
    try:
        worker.wait_ready()
        _max_message_bytes(labelled, 512)  # every envelope of labels is larger
        assert cli("replay", str(path), ov=ov, timeout=300).returncode == 0
        wait_for(lambda: worker.proc.poll() is not None, 180, "the worker to stop on the refused labels")
        log = worker.log.read_text()
        assert worker.proc.returncode == 1, log[-3000:]
        assert f"a send to topic {labelled} failed for good" in log and "MessageSizeTooLarge" in log, log[-3000:]
    finally:
        worker.stop()
    _max_message_bytes(labelled, 32 << 20)
    restarted = WorkerProc(ov, tmp_path / "worker2.log")
    try:
        restarted.wait_ready()
        # the refused labels were sent again, none twice
        m = counted_once(restarted, n_imps, 240, "every impression labelled after the restart")
        assert total(m, "stream_lis_labelled_examples_total") > 0

        # `topics describe` shows the groups' committed offsets and lag (they used to read None)
        def described() -> list[str]:
            out = cli("topics", "describe", ov=ov).stdout.decode().splitlines()
            return [line for line in out if line.startswith(ov["kafka.topics.impressions"] + "[")]

        def committed_to_the_end() -> bool:
            rows = described()
            return bool(rows) and all(re.search(r"end (\d+)  group \S+ committed \1 lag 0$", r) for r in rows)

        wait_for(committed_to_the_end, 60, "the input offsets committed to their ends", restarted.alive)
    finally:
        restarted.stop()


def test_a_flush_that_fails_under_a_lost_send_says_the_lost_send():
    """kafka-python's flush can raise a nameless ``UnknownError('Future not done')`` while the
    sender aborts a batch the broker refused; the watched failure arrives a moment later and
    is what the stage must say (and stop on)."""
    import threading

    from kafka.errors import UnknownError
    from kafka.future import Future

    from stream_lis.runtime.kafka.delivery import Delivery, DeliveryFailed

    lost = Future()

    class Producer:
        def flush(self, timeout=None):
            threading.Timer(0.2, lambda: lost.failure(ValueError("MessageSizeTooLargeError"))).start()
            raise UnknownError("Future not done")

    d = Delivery()
    d.watch(lost, "labelled")
    with pytest.raises(DeliveryFailed, match="a send to topic labelled failed for good .*MessageSizeTooLarge"):
        d.flush(Producer())
    # a flush error with no lost send behind it is the client's own, raised as it is
    with pytest.raises(UnknownError):
        Delivery().flush(Producer(), wait_s=0.1)
