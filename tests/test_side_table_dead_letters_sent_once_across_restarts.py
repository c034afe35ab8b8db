"""A side topic's rejected records go to the dead-letter topic once, not at every start.

A side table's feed reads its topic from the beginning at every start, on every worker: each
start dead-lettered the same bad records again. The feed now commits how far its rejected
records are on the broker (``letter_marks``, consumer group ``<group_id>-tables``) and does
not send those below the mark again; it still counts them and tracks their keys. Checked
against the real broker: three feeds in turn on one topic, as three starts of a worker.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import GroupAuthorizationFailedError, KafkaTimeoutError
from kafka.future import Future

from kafka_harness import BOOTSTRAP, cli, namespace, require_broker, wait_for
from stream_lis.config import load_config
from stream_lis.runtime.kafka.produce import dead_letter_sink, make_producer
from stream_lis.runtime.kafka.settings import client_kwargs
from stream_lis.runtime.kafka.tables import TableFeed

pytestmark = pytest.mark.kafka

CLIENT = {"bootstrap_servers": BOOTSTRAP}


def _apply(key: bytes | None, value: bytes | None) -> str:
    return "unparseable" if value is not None and value.startswith(b"bad") else "upserted"


def _dead_letters(topic: str) -> list[bytes]:
    consumer = KafkaConsumer(enable_auto_commit=False, **CLIENT)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[bytes] = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for msgs in consumer.poll(timeout_ms=1000).values():
                out += [m.value for m in msgs]
        return out
    finally:
        consumer.close()


def _feed(ov: dict, sink, group: str | None, rules: str = "r1") -> TableFeed:
    cfg = load_config(None, {**ov, "kafka.bootstrap_servers": BOOTSTRAP})
    return TableFeed("preferences", cfg.kafka.topics.preferences, _apply, lambda: 0, {}, threading.Lock(),
                     client_kwargs(cfg.kafka), sink, refresh_s=0.3, marks_group=group, rules=rules)


@contextlib.contextmanager
def _running(feed: TableFeed):
    runner = threading.Thread(target=feed.run, daemon=True)
    runner.start()
    try:
        wait_for(feed.recovered.is_set, 60, "the feed read its topic")
        yield
    finally:
        feed.stopping.set()
        runner.join(30)
    assert not runner.is_alive()


def _start(ov: dict, producer, group: str | None, caplog, rules: str = "r1") -> TableFeed:
    """One start: a feed reads the whole topic, saves its marks, and stops."""
    feed = _feed(ov, dead_letter_sink(producer, ov["kafka.topics.dead_letters"]), group, rules)
    with caplog.at_level(logging.INFO, logger="stream_lis.tables"), _running(feed):
        producer.flush(30)
        if group is not None:  # its letters acknowledged, the feed marks what it read
            ends = dict(feed.marks.read_to)
            wait_for(lambda: all(feed.marks.marks.get(tp) == off for tp, off in ends.items()), 30, "the marks saved")
    return feed


def _committed(group: str, topic: str) -> dict[int, int | None]:
    consumer = KafkaConsumer(group_id=group, enable_auto_commit=False, **CLIENT)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in sorted(consumer.partitions_for_topic(topic))}
    finally:
        consumer.close()


def _topic_with(records: list[tuple[bytes, bytes]]) -> tuple[dict, str, str]:
    require_broker()
    ov = namespace({"kafka.partitions": 2})
    assert cli("topics", "create", ov=ov).returncode == 0
    producer = make_producer(CLIENT)
    try:
        for k, v in records:
            producer.send(ov["kafka.topics.preferences"], key=k, value=v)
        producer.flush(30)
    finally:
        producer.close()
    return ov, ov["kafka.topics.preferences"], f"{ov['kafka.group_id']}-tables"


def test_rejected_side_records_are_dead_lettered_once_across_starts(caplog):
    require_broker()
    ov = namespace({"kafka.partitions": 2})
    assert cli("topics", "create", ov=ov).returncode == 0
    topic, letters, group = ov["kafka.topics.preferences"], ov["kafka.topics.dead_letters"], f"{ov['kafka.group_id']}-tables"
    producer = make_producer(CLIENT)
    try:
        for k, v in [(b"a", b"good a"), (b"b", b"bad b"), (b"c", b"bad c"), (b"d", b"good d"), (b"e", b"bad e")]:
            producer.send(topic, key=k, value=v)
        producer.flush(30)

        first = _start(ov, producer, group, caplog)
        assert first.counts == {"upserted": 2, "unparseable": 3}
        assert len(_dead_letters(letters)) == 3

        caplog.clear()
        again = _start(ov, producer, group, caplog)
        assert again.counts == {"upserted": 2, "unparseable": 3}  # still counted, and their keys tracked
        assert again.rejected_keys == {b"b", b"c", b"e"}
        assert len(_dead_letters(letters)) == 3  # not sent again
        assert any("were dead-lettered before; not sent again" in r.getMessage() for r in caplog.records)

        producer.send(topic, key=b"f", value=b"bad f")  # a new bad record is sent, once
        producer.flush(30)
        _start(ov, producer, group, caplog)
        assert len(_dead_letters(letters)) == 4

        _start(ov, producer, group, caplog, rules="r2")  # other rules: a record accepted then may be rejected now
        assert len(_dead_letters(letters)) == 8

        _start(ov, producer, None, caplog)  # without marks (no group): every start sends them all, as before
        assert len(_dead_letters(letters)) == 12
    finally:
        producer.close()


def test_a_mark_waits_for_the_letters_before_it_to_be_acknowledged():
    ov, topic, group = _topic_with([(b"a", b"bad a"), (b"b", b"good b")])
    pending: list[Future] = []

    def sink(_invalid, _source):
        pending.append(Future())
        return pending[-1]

    feed = _feed(ov, sink, group)
    with _running(feed):
        time.sleep(2.0)  # several rounds of the feed, at refresh_s 0.3
        assert len(pending) == 1 and _committed(group, topic) == {0: None, 1: None}
        pending[0].success(None)
        wait_for(lambda: sorted(_committed(group, topic).values(), key=str) == sorted(
            [feed.marks.read_to.get(TopicPartition(topic, p)) for p in (0, 1)], key=str), 30, "the marks committed")
    assert feed.marks.on


def test_a_letter_that_failed_turns_the_marks_off():
    ov, topic, group = _topic_with([(b"a", b"bad a"), (b"b", b"good b")])
    feed = _feed(ov, lambda _inv, _src: Future().failure(KafkaTimeoutError("not delivered")), group)
    with _running(feed):
        wait_for(lambda: not feed.marks.on, 30, "the marks off")
    assert _committed(group, topic) == {0: None, 1: None}


def test_a_group_the_worker_may_not_use_leaves_the_feed_working_without_marks(monkeypatch, caplog):
    """Without an ACL for ``<group_id>-tables`` the broker refuses the group's offsets: the
    marks are off, said once, and the table is read as before (no ACL can be set on this
    broker: the client's refusal is what the test gives)."""
    ov, topic, group = _topic_with([(b"a", b"bad a"), (b"b", b"good b")])

    def refused(self, *args, **kwargs):
        raise GroupAuthorizationFailedError(group)

    monkeypatch.setattr(KafkaConsumer, "committed", refused)
    letters: list = []
    feed = _feed(ov, lambda inv, src: letters.append(src), group)
    with caplog.at_level(logging.WARNING, logger="stream_lis.tables"), _running(feed):
        wait_for(lambda: len(letters) == 1, 30, "the rejected record dead-lettered")
    assert not feed.marks.on and feed.counts == {"unparseable": 1, "upserted": 1}
    said = [r.getMessage() for r in caplog.records if "marks of what was dead-lettered" in r.getMessage()]
    assert len(said) == 1 and "GroupAuthorizationFailedError" in said[0], said
