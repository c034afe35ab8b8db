"""A side table's feed waiting for its topic goes on beating while the broker is away.

A feed whose topic does not exist yet asks the broker for the topic's metadata every second.
kafka-python waits for that answer without a bound, so a broker outage while it waited held
the feed's loop: its pulse stopped, and after ``kafka.stall_timeout`` ``/healthz`` failed and
the worker was restarted for an outage (the one thing the stall check must not restart
workers for). The feed now waits for the broker on a thread of its own while its loop beats,
says in the log that it waits, and stops when asked, the broker still away. Checked against
the real broker, frozen (SIGSTOP) for longer than the stall timeout.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from kafka_harness import BOOTSTRAP, broker_frozen, broker_pid, namespace, require_broker, wait_for
from stream_lis.config import load_config
from stream_lis.runtime.kafka.settings import client_kwargs
from stream_lis.runtime.kafka.tables import TableFeed

pytestmark = pytest.mark.kafka

FROZEN_S = 6


def _feed(topic: str) -> tuple[TableFeed, list[tuple[bytes | None, bytes | None]], list]:
    cfg = load_config(None, {**namespace(), "kafka.bootstrap_servers": BOOTSTRAP})
    applied: list[tuple[bytes | None, bytes | None]] = []
    dead: list = []

    def apply(key, value):
        applied.append((key, value))
        return "upserted"

    feed = TableFeed("preferences", topic, apply, lambda: len(applied), {}, threading.Lock(),
                     client_kwargs(cfg.kafka), lambda invalid, source: dead.append((invalid, source)))
    return feed, applied, dead


def _pulse_ages(feed: TableFeed, seconds: float) -> list[float]:
    ages, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        ages.append(feed.pulse.age())
        time.sleep(0.2)
    return ages


def test_a_feed_waiting_for_its_topic_beats_through_a_frozen_broker_and_reads_it_after(caplog):
    require_broker()
    pid = broker_pid()
    topic = namespace()["kafka.topics.preferences"]
    feed, applied, dead = _feed(topic)
    runner = threading.Thread(target=feed.run, daemon=True)
    with caplog.at_level(logging.WARNING, logger="stream_lis.tables"):
        runner.start()
        try:
            wait_for(lambda: any("does not exist; waiting for it" in r.getMessage() for r in caplog.records), 30,
                     "the feed waiting for its topic")
            with broker_frozen(pid):
                ages = _pulse_ages(feed, FROZEN_S)
            # a beat at least every 1.2 s (the feed waits 1 s between its questions), through the outage
            assert max(ages) < 1.2, " ".join(f"{a:.2f}" for a in ages)
            said = [r.getMessage() for r in caplog.records]
            assert any("the broker has not answered for" in m and "partitions of topic" in m for m in said), said
            assert not feed.recovered.is_set()

            admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
            try:
                admin.create_topics([NewTopic(topic, 1, 1)])
            finally:
                admin.close()
            wait_for(feed.recovered.is_set, 60, "the feed read its topic once the broker answered and it existed")
            assert any("the broker answered after" in r.getMessage() for r in caplog.records)
            assert applied == [] and dead == []  # an empty topic: nothing applied, nothing rejected
        finally:
            feed.stopping.set()
            runner.join(30)
    assert not runner.is_alive()


def test_a_feed_waiting_for_a_frozen_broker_stops_when_asked():
    require_broker()
    pid = broker_pid()
    feed, _, _ = _feed(namespace()["kafka.topics.preferences"])
    runner = threading.Thread(target=feed.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: feed.pulse.age() < 1.0 and runner.is_alive(), 30, "the feed running")
        time.sleep(1.5)  # in its wait for the topic
        with broker_frozen(pid):
            time.sleep(1.5)  # its question to the broker is on its way
            asked = time.monotonic()
            feed.stopping.set()
            runner.join(10)
            stopped_in = time.monotonic() - asked
            assert not runner.is_alive(), "the feed did not stop while the broker was away"
        assert stopped_in < 5, stopped_in
    finally:
        feed.stopping.set()
        runner.join(30)
