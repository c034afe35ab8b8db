"""A side table's feed waiting for its topic goes on beating, and living, while the broker is away.

A feed whose topic does not exist yet asks the broker for the topic's metadata every second.
kafka-python waits for that answer up to its request timeout (30 s) and then raises, as it
does at once when the broker refuses connections. So a broker outage while the feed waited
first held its loop (its pulse stopped: past ``kafka.stall_timeout`` ``/healthz`` failed and
the worker was restarted for an outage, the one thing the stall check must not restart
workers for), then killed the feed and the worker with it. The feed now waits for the broker
on a thread of its own while its loop beats, asks again while the broker does not answer,
says so in the log, and stops when asked, the broker still away. Checked against the real
broker, frozen (SIGSTOP) for longer than the stall timeout, and than the request timeout.
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
from stream_lis.runtime.kafka.tables import ASK_SLOW_S, TableFeed

pytestmark = pytest.mark.kafka

#: Long enough for the feed to say it waits (ASK_SLOW_S after its question, which comes within
#: a second of the freeze), with room to spare on a loaded machine.
FROZEN_S = ASK_SLOW_S + 3


def _feed(topic: str, **tuning) -> tuple[TableFeed, list[tuple[bytes | None, bytes | None]], list]:
    cfg = load_config(None, {**namespace(), "kafka.bootstrap_servers": BOOTSTRAP})
    applied: list[tuple[bytes | None, bytes | None]] = []
    dead: list = []

    def apply(key, value):
        applied.append((key, value))
        return "upserted"

    feed = TableFeed("preferences", topic, apply, lambda: len(applied), {}, threading.Lock(),
                     client_kwargs(cfg.kafka), lambda invalid, source: dead.append((invalid, source)), tuning=tuning)
    return feed, applied, dead


def _waiting_through_a_freeze(tmp_topic: str, caplog, **tuning) -> list[str]:
    """A feed waiting for ``tmp_topic`` through a freeze of FROZEN_S; then the topic is made and
    the feed must read it. Returns what the feed logged."""
    require_broker()
    pid = broker_pid()
    feed, applied, dead = _feed(tmp_topic, **tuning)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            feed.run()
        except BaseException as exc:  # the worker would stop on it
            failed.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    with caplog.at_level(logging.WARNING, logger="stream_lis.tables"):
        runner.start()
        try:
            wait_for(lambda: any("does not exist; waiting for it" in r.getMessage() for r in caplog.records), 30,
                     "the feed waiting for its topic")
            ages, end = [], time.monotonic() + FROZEN_S
            with broker_frozen(pid):
                while time.monotonic() < end:
                    ages.append(feed.pulse.age())
                    time.sleep(0.2)
            # a beat at least every 1.2 s (the feed waits 1 s between its questions), through the outage
            assert max(ages) < 1.2, " ".join(f"{a:.2f}" for a in ages)
            assert runner.is_alive() and not failed, failed
            assert not feed.recovered.is_set()

            admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
            try:
                admin.create_topics([NewTopic(tmp_topic, 1, 1)])
            finally:
                admin.close()
            wait_for(feed.recovered.is_set, 60, "the feed read its topic once the broker answered and it existed",
                     lambda: None if not failed else pytest.fail(f"the feed died: {failed[0]!r}"))
            assert applied == [] and dead == []  # an empty topic: nothing applied, nothing rejected
            said = [r.getMessage() for r in caplog.records]
            assert any("the broker answered after" in m for m in said), said
            return said
        finally:
            feed.stopping.set()
            runner.join(30)
            assert not runner.is_alive()


def test_a_feed_waiting_for_its_topic_beats_through_a_frozen_broker_and_reads_it_after(caplog):
    said = _waiting_through_a_freeze(namespace()["kafka.topics.preferences"], caplog)
    assert any("the broker has not answered for" in m and "partitions of topic" in m for m in said), said


def test_a_feed_whose_question_times_out_asks_again_and_lives(caplog):
    """The client gives up on the frozen broker (its request timeout, here 2 s, 30 s by
    default): the feed asks again, it does not die."""
    said = _waiting_through_a_freeze(namespace()["kafka.topics.preferences"], caplog, request_timeout_ms=2_000)
    assert any("the broker does not answer" in m and "(partitions of topic" in m and "asking again" in m
               for m in said), said


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
