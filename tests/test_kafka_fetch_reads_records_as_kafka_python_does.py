"""The worker's consumers read fetched records with aiokafka's compiled reader
(``stream_lis.runtime.kafka.fetch``): every record, position and error must be the ones
kafka-python's own reader gives, whatever the batch holds (formats 0 to 2, compression,
keys, null values, headers, control batches, a fetch starting inside a batch, a poll
stopping inside one, a cut-off last batch, bad CRCs), and on records a real broker served."""

from __future__ import annotations

import contextlib
import random
import struct
import time
import uuid

import pytest
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder
from kafka.record.util import calc_crc32c
from kafka.structs import TopicPartition

from stream_lis.runtime.kafka import fetch

TP = TopicPartition("events", 3)
GZIP = 1


@pytest.fixture(autouse=True)
def _restore(request):
    """Each test chooses the reader; the process's choice is put back after it. Where the
    compiled reader cannot be installed (a kafka-python release it was not tested with), the
    worker keeps kafka-python's reader and there is nothing to compare: said as a skip."""
    why = fetch.unavailable()
    if why is not None and request.node.name != "test_install_says_why_it_cannot":
        pytest.skip(f"the compiled reader is not installed here: {why}")
    was = fetch.installed()
    yield
    if was:
        fetch.install()
    else:
        fetch.uninstall()


def _batch(rng: random.Random, magic: int, codec: int, offset: int, n: int, headers: bool = True) -> bytes:
    # Format 2 as a broker writes it: the base offset in the header, deltas from 0.
    b = MemoryRecordsBuilder(magic=magic, compression_type=codec, batch_size=1 << 24, offset=0 if magic == 2 else offset)
    for k in range(n):
        key = None if rng.random() < 0.3 else b"key-%d" % rng.randrange(1000)
        value = None if rng.random() < 0.1 else bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        hdrs = [(f"h{j}", None if rng.random() < 0.2 else b"v%d" % j) for j in range(rng.randrange(3))] if headers and magic == 2 else []
        b.append(timestamp=1_700_000_000_000 + rng.randrange(10**6), key=key, value=value, headers=hdrs)
    b.close()
    return _patch(bytes(b.buffer()), base_offset=offset) if magic == 2 else bytes(b.buffer())


def _patch(batch: bytes, base_offset: int | None = None, attributes: int = 0, tail: int = 0,
           max_timestamp: int | None = None) -> bytes:
    """A format-2 batch's header changed as a broker may write it, CRC redone: its base offset,
    attribute bits (0x08 LogAppendTime, 0x10 transactional, 0x20 control), ``tail`` more
    offsets after its last record (compaction removed them), its max timestamp."""
    buf = bytearray(batch)
    if base_offset is not None:
        struct.pack_into(">q", buf, 0, base_offset)  # outside the CRC
    struct.pack_into(">h", buf, 21, struct.unpack_from(">h", buf, 21)[0] | attributes)
    struct.pack_into(">i", buf, 23, struct.unpack_from(">i", buf, 23)[0] + tail)
    if max_timestamp is not None:
        struct.pack_into(">q", buf, 35, max_timestamp)
    struct.pack_into(">I", buf, 17, calc_crc32c(memoryview(buf)[21:]))
    return bytes(buf)


def _control(batch: bytes, leader_epoch: int = 0) -> bytes:
    """The same format-2 batch marked as a control batch (a transaction marker)."""
    return _epoch(_patch(batch, attributes=0x20), leader_epoch)


def _epoch(batch: bytes, leader_epoch: int) -> bytes:
    buf = bytearray(batch)
    buf[12:16] = struct.pack(">i", leader_epoch)  # outside the CRC
    return bytes(buf)


def _fetch(buf: bytes, fetch_offset: int = 0, take: int | None = None, check_crcs: bool = True):
    """Every record a fetch of ``buf`` yields (``take`` at a time, as polls would), with the
    position and leader epoch after each take; or the error it raised."""
    recs = Fetcher.PartitionRecords(fetch_offset, TP, MemoryRecords(buf), check_crcs=check_crcs)
    out = []
    try:
        while recs:
            got = recs.take(take)
            # == alone would take bytearray for bytes, a list for a tuple: the types count too
            types = [tuple(type(x).__name__ for x in (r.key, r.value, r.headers, r.timestamp)) for r in got]
            out.append((got, types, recs.next_fetch_offset, recs.leader_epoch, recs.records_read))
            if not got:
                break
    except CorruptRecordError as exc:
        out.append(("CorruptRecordError", str(exc)))
    return out


#: Batches the compiled reader read (``_both``), so a test knows it was not always left out.
COMPILED = []


@contextlib.contextmanager
def _compiled():
    """The compiled reader installed, each batch it is given noted in ``COMPILED``."""
    assert fetch.install(), fetch.unavailable()
    read = fetch._read

    def counted(batch):
        out = read(batch)
        COMPILED.append(out is not None)
        return out

    fetch._read = counted
    try:
        yield
    finally:
        fetch._read = read


def _both(buf: bytes, **kw):
    fetch.uninstall()
    library = _fetch(buf, **kw)
    with _compiled():
        return library, _fetch(buf, **kw)


def test_fetches_of_every_kind_of_batch_give_the_same_records_and_positions():
    rng = random.Random(11)
    cases = 0
    COMPILED.clear()
    for trial in range(40):
        parts, offset = [], rng.randrange(0, 10**6)
        for _ in range(rng.randrange(1, 5)):
            magic = rng.choice([2, 2, 2, 1, 0])
            n = rng.randrange(1, 60)
            batch = _batch(rng, magic, rng.choice([0, 0, GZIP]), offset, n)
            if magic == 2 and rng.random() < 0.3:
                batch = _epoch(batch, rng.randrange(0, 50))
            if magic == 2 and rng.random() < 0.15:
                batch = _control(batch, rng.randrange(0, 50))
            elif magic == 2 and rng.random() < 0.2:  # broker time instead of the producer's
                batch = _patch(batch, attributes=0x08, max_timestamp=1_800_000_000_000 + trial)
            elif magic == 2 and rng.random() < 0.2:  # a transaction's records (not its marker)
                batch = _patch(batch, attributes=0x10)
            if magic == 2 and rng.random() < 0.2:  # compaction removed the batch's last records
                gap = rng.randrange(1, 4)
                batch, n = _patch(batch, tail=gap), n + gap
            parts.append(batch)
            offset += n + rng.randrange(0, 3)  # gaps, as compaction leaves
        buf = b"".join(parts)
        if rng.random() < 0.3:
            buf = buf[:len(buf) - rng.randrange(1, 40)]  # a fetch ends inside its last batch
        start = rng.randrange(offset - 70, offset) if rng.random() < 0.5 else 0
        take = rng.choice([None, 1, 7, 50])
        library, fast = _both(buf, fetch_offset=max(0, start), take=take)
        assert fast == library, f"trial {trial}"
        cases += sum(len(step[0]) for step in library if isinstance(step[0], list))
    assert cases > 1000  # the trials did read records
    assert COMPILED.count(True) > 40 and COMPILED.count(False) == 0  # by the compiled reader (gzip too)


def _plain(offset: int, n: int) -> bytes:
    """A format-2 batch of ``n`` 60-byte values without headers: its last bytes are known."""
    b = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20, offset=offset)
    for k in range(n):
        b.append(timestamp=1_000 + k, key=b"k%d" % k, value=b"%060d" % k, headers=[])
    b.close()
    return bytes(b.buffer())


def test_a_batch_with_a_bad_crc_is_refused_alike():
    bad = bytearray(_plain(100, 20))
    bad[-5] ^= 0x01  # a byte of the last record's value (the header count is the last byte)
    library, fast = _both(bytes(bad))
    assert fast == library
    assert library[-1][0] == "CorruptRecordError" and "crc" in library[-1][1]
    # Without CRC checks the damaged byte is read as it is, by either reader.
    library, fast = _both(bytes(bad), check_crcs=False)
    assert fast == library
    assert library[0][0][-1].value[-4:] != (b"%060d" % 19)[-4:]


def test_a_record_the_compiled_reader_refuses_goes_to_kafka_pythons_reader():
    batch = bytearray(_plain(0, 5))
    batch[-1] = 0x02  # the last record's header count: one header, with no bytes for it
    library, fast = _both(bytes(batch), check_crcs=False)
    assert fast == library
    assert [r.offset for r in library[0][0]] == [0, 1, 2, 3] and library[-1][0] == "CorruptRecordError"
    assert COMPILED[-1] is False  # the compiled reader refused the batch: kafka-python's read it


def test_a_fetch_read_while_installed_is_taken_after_uninstall():
    """``kafka.fast_fetch = false`` in a later worker of the process uninstalls the reader while
    fetches built with it wait to be taken (a paused partition, a full poll)."""
    assert fetch.install()
    started = Fetcher.PartitionRecords(0, TP, MemoryRecords(_plain(0, 10)))
    unstarted = Fetcher.PartitionRecords(0, TP, MemoryRecords(_plain(0, 10)))
    first = started.take(3)
    fetch.uninstall()
    assert [r.offset for r in first + started.take()] == list(range(10))
    assert [r.offset for r in unstarted.take()] == list(range(10))
    assert fetch.install() and fetch.install() and fetch.installed()  # twice: still one patch
    fetch.uninstall()
    assert [r.offset for r in Fetcher.PartitionRecords(0, TP, MemoryRecords(_plain(0, 4))).take()] == [0, 1, 2, 3]


def test_install_says_why_it_cannot(monkeypatch):
    import kafka

    monkeypatch.setattr(kafka, "__version__", "9.9.9")
    fetch.uninstall()
    assert "9.9.9" in fetch.unavailable()
    assert fetch.install() is False and not fetch.installed()


@pytest.mark.kafka
def test_records_a_broker_served_are_read_alike():
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    from kafka_harness import BOOTSTRAP, require_broker

    require_broker()
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    # The records are dated 2023 (CreateTime): without retention.ms=-1 the test broker's time
    # retention (6 h, checked every minute, small segments) deleted them now and then while the
    # test read them, and a reader's position jumped past the records it had not read yet.
    topics = {f"fetch-{uuid.uuid4().hex[:8]}-{kind}": cfg for kind, cfg in
              (("create", {"retention.ms": "-1"}), ("append", {"message.timestamp.type": "LogAppendTime"}))}
    admin.create_topics([NewTopic(t, 2, 1, topic_configs=c) for t, c in topics.items()])
    rng = random.Random(9)
    COMPILED.clear()
    try:
        for codec in (None, "gzip"):
            producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, compression_type=codec, linger_ms=20)
            for topic in topics:
                for k in range(3000):
                    key = None if k % 7 == 0 else b"k%d" % (k % 50)
                    producer.send(topic, key=key,  # a null value needs a key (a tombstone)
                                  value=None if key and k % 97 == 1 else b'{"n":%d,"pad":"%s"}' % (k, b"x" * rng.randrange(200)),
                                  headers=[("h", b"%d" % k)] if k % 13 == 0 else [],
                                  partition=k % 2, timestamp_ms=1_700_000_000_000 + k)
            producer.flush()
            producer.close()
        for topic in topics:
            read = {}
            for reader in ("library", "fast"):
                fetch.uninstall()
                consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, group_id=None,
                                         max_poll_records=333, fetch_max_bytes=64 * 1024)
                parts = [TopicPartition(topic, p) for p in range(2)]
                consumer.assign(parts)
                consumer.seek_to_beginning(*parts)
                got, deadline = [], time.monotonic() + 60
                with _compiled() if reader == "fast" else contextlib.nullcontext():
                    while len(got) < 6000 and time.monotonic() < deadline:
                        for msgs in consumer.poll(timeout_ms=500).values():
                            got.extend(msgs)
                consumer.close()
                read[reader] = sorted(got, key=lambda m: (m.partition, m.offset))
            assert len(read["library"]) == 6000, topic
            assert read["fast"] == read["library"], topic
            assert sum(m.headers != [] for m in read["fast"]) > 400 and any(m.value is None for m in read["fast"])
        assert COMPILED.count(True) >= 8 and COMPILED.count(False) == 0  # 2 topics x 2 partitions x 2 codecs
    finally:
        admin.delete_topics(list(topics))
        admin.close()
