"""A side topic's rejected records go to the dead-letter topic once, not at every start.

A side table's feed reads its topic from the beginning at every start, on every worker: each
start dead-lettered the same bad records again. The feed now commits how far its rejected
records are on the broker (``letter_marks``, consumer group ``<group_id>-tables``) and does
not send those below the mark again; it still counts them and tracks their keys. Checked
against the real broker: three feeds in turn on one topic, as three starts of a worker.
"""

from __future__ import annotations

import logging
import threading

import pytest
from kafka import KafkaConsumer, TopicPartition

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


def _start(ov: dict, producer, group: str | None, caplog) -> TableFeed:
    """One start: a feed reads the whole topic, saves its marks, and stops."""
    cfg = load_config(None, {**ov, "kafka.bootstrap_servers": BOOTSTRAP})
    t = cfg.kafka.topics
    feed = TableFeed("preferences", t.preferences, _apply, lambda: 0, {}, threading.Lock(), client_kwargs(cfg.kafka),
                     dead_letter_sink(producer, t.dead_letters), refresh_s=0.3, marks_group=group)
    runner = threading.Thread(target=feed.run, daemon=True)
    with caplog.at_level(logging.INFO, logger="stream_lis.tables"):
        runner.start()
        try:
            wait_for(feed.recovered.is_set, 60, "the feed read its topic")
            producer.flush(30)
            if group is not None:  # its letters acknowledged, the feed marks what it read
                ends = {tp: off for tp, off in feed.marks.read_to.items()}
                wait_for(lambda: all(feed.marks.marks.get(tp) == off for tp, off in ends.items()), 30,
                         "the marks saved")
        finally:
            feed.stopping.set()
            runner.join(30)
    assert not runner.is_alive()
    return feed


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

        _start(ov, producer, None, caplog)  # without marks (no group): every start sends them all, as before
        assert len(_dead_letters(letters)) == 8
    finally:
        producer.close()
