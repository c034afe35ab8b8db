"""Fetched records read by aiokafka's compiled record reader instead of kafka-python's.

kafka-python reads every fetched record in Python: its varints, key, value and headers, then
a ``DefaultRecord`` and a ``ConsumerRecord`` for it, about 3 µs a record on a quiet day. On
an input topic holding one event per record that is a fifth of what the join stage spends on
an event. aiokafka (aio-libs) ships a reader of the same record format compiled with Cython;
with ``install``, kafka-python's fetcher hands each record batch to it and builds the
``ConsumerRecord`` tuples itself: 18 times faster to read a batch, 8 times through the whole
consumer path.

Everything around the records stays kafka-python's: which batches are read, their CRC
checks, leader epochs, skipping control batches, fetch positions. kafka-python's own reader
still reads what this does not handle: message formats 0 and 1, a compression codec
aiokafka has no library for, a batch aiokafka's reader refuses (kafka-python's then reads it,
or raises its own error for it), and consumers with deserializers or reading committed
transactions only (their whole fetch). The records and positions are the same either way;
kafka-python's fetch metrics count a batch's bytes rather than its records' (``bytes_read``).

``install`` patches kafka-python's ``Fetcher.PartitionRecords`` for the whole process, and
only on the kafka-python release series it was written and tested against (``TESTED``);
``kafka.fast_fetch = false`` in the config keeps kafka-python's reader.

>>> from kafka.record.memory_records import MemoryRecordsBuilder, MemoryRecords
>>> from kafka.structs import TopicPartition
>>> from kafka.consumer.fetcher import Fetcher
>>> b = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
>>> for k in range(3):
...     _ = b.append(timestamp=1000 + k, key=b"k%d" % k, value=b"v%d" % k, headers=[])
>>> b.close()
>>> def fetched():
...     recs = Fetcher.PartitionRecords(1, TopicPartition("t", 0), MemoryRecords(bytes(b.buffer())))
...     return [(r.offset, r.timestamp, r.key, r.value) for r in recs.take()]
>>> was = installed()
>>> _ = install()
>>> fast = fetched()
>>> uninstall()
>>> fast == fetched(), fast
(True, [(1, 1001, b'k1', b'v1'), (2, 1002, b'k2', b'v2')])
>>> _ = install() if was else None
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any, Callable, Iterator

log = logging.getLogger("stream_lis.kafka.fetch")

#: kafka-python release series whose fetcher internals this module was written against, and
#: aiokafka releases whose compiled reader it was tested with.
TESTED = ("3.0.",)
TESTED_AIOKAFKA = ("0.11.", "0.12.", "0.13.", "0.14.")

#: kafka-python's own ``_unpack_records``, kept from the first ``install`` on and never
#: cleared: a fetch taken after ``uninstall`` may still be one built while installed.
_library: Callable[..., Iterator[Any]] | None = None
_installed = False
_lock = threading.Lock()


def unavailable() -> str | None:
    """Why ``install`` would do nothing (``None``: it can install)."""
    try:
        import aiokafka
        import kafka
        importlib.import_module("aiokafka.record._crecords")  # the compiled reader (not the Python fallback)
        from kafka.consumer.fetcher import Fetcher
        from kafka.record.default_records import DefaultRecordBatch as LibraryBatch
    except ImportError as exc:
        return f"not importable: {exc}"
    if not kafka.__version__.startswith(TESTED):
        return f"kafka-python {kafka.__version__} is not a release this was tested with ({', '.join(TESTED)}x)"
    if not aiokafka.__version__.startswith(TESTED_AIOKAFKA):
        return f"aiokafka {aiokafka.__version__} is not a release this was tested with ({', '.join(TESTED_AIOKAFKA)}x)"
    if not (hasattr(Fetcher, "PartitionRecords") and hasattr(Fetcher.PartitionRecords, "_unpack_records")
            and "_buffer" in LibraryBatch.__slots__):
        return "kafka-python's fetcher is not laid out as expected"
    return None


def install() -> bool:
    """Read fetched records with aiokafka's reader from now on, in every consumer of the
    process; False (and nothing changed) when ``unavailable()`` says why not."""
    global _library, _installed
    why = unavailable()
    if why is not None:
        log.info("kafka-python reads fetched records itself: %s", why)
        return False
    from kafka.consumer.fetcher import Fetcher

    with _lock:
        if _library is None:
            _library = Fetcher.PartitionRecords._unpack_records
        if not _installed:
            Fetcher.PartitionRecords._unpack_records = _unpack_records
            _installed = True
    return True


def uninstall() -> None:
    """kafka-python's own reader again (for fetches started from now on)."""
    global _installed
    with _lock:
        if _installed:
            from kafka.consumer.fetcher import Fetcher

            Fetcher.PartitionRecords._unpack_records = _library
            _installed = False


def installed() -> bool:
    return _installed


def _header_size(headers: list) -> int:
    # As kafka-python counts it (ConsumerRecord.serialized_header_size).
    return sum(len(k.encode("utf-8")) + (len(v) if v is not None else 0) for k, v in headers) if headers else -1


def _read(batch: Any) -> list | None:
    """The records of a format-2 batch, by aiokafka's reader; ``None`` when it cannot read
    them (kafka-python's reader then does, or raises its own error for the batch)."""
    from aiokafka import codec
    from aiokafka.record._crecords import DefaultRecordBatch

    kind = batch.compression_type
    if kind and not (kind in _CODECS and getattr(codec, _CODECS[kind])()):
        return None
    try:
        return list(DefaultRecordBatch(bytes(batch._buffer)))
    except Exception:  # noqa: BLE001 - any refusal: the library's reader decides what it is
        return None


#: Compression type -> aiokafka's check that it can decompress it (``aiokafka.codec``).
_CODECS = {1: "has_gzip", 2: "has_snappy", 3: "has_lz4", 4: "has_zstd"}


def _unpack_records(self: Any, tp: Any, records: Any, key_deserializer: Any, value_deserializer: Any) -> Iterator[Any]:
    """``Fetcher.PartitionRecords._unpack_records`` (kafka-python 3.0), its record loop
    replaced: ``self`` is the partition's ``PartitionRecords``."""
    from kafka import errors
    from kafka.consumer.fetcher import ConsumerRecord, IsolationLevel

    assert _library is not None  # set before this function is ever installed
    if (key_deserializer is not None or value_deserializer is not None
            or self.isolation_level != IsolationLevel.READ_UNCOMMITTED):
        yield from _library(self, tp, records, key_deserializer, value_deserializer)
        return
    topic, partition, new = tp.topic, tp.partition, tuple.__new__
    try:
        batch = records.next_batch()
        last_batch = None
        while batch is not None:
            last_batch = batch
            if self.check_crcs and not batch.validate_crc():
                raise errors.CorruptRecordError(f"Record batch for partition {self.topic_partition} at offset "
                                                f"{batch.base_offset} failed crc check")
            parsed = None
            if batch.magic == 2:
                self.leader_epoch = batch.leader_epoch
                if batch.is_control_batch:  # a transaction marker: no record for the consumer
                    self.next_fetch_offset = batch.next_offset
                    batch = records.next_batch()
                    continue
                parsed = _read(batch)
            if parsed is None:
                yield from _library_records(self, tp, batch)
            else:
                epoch = self.leader_epoch
                self.bytes_read += batch.size_in_bytes
                for r in parsed:
                    key, value, headers, offset = r.key, r.value, r.headers, r.offset
                    # Per record: a poll may stop within the batch, and resumes from here.
                    self.records_read += 1
                    self.next_fetch_offset = offset + 1
                    yield new(ConsumerRecord, (topic, partition, epoch, offset, r.timestamp, r.timestamp_type, key,
                                               value, headers, None, -1 if key is None else len(key),
                                               -1 if value is None else len(value),
                                               _header_size(headers) if headers else -1))
            batch = records.next_batch()
        # Format 2 keeps a batch's last offset even when compaction removed its last record:
        # the next fetch starts after it, not again at that batch.
        if last_batch is not None and last_batch.magic == 2:
            self.next_fetch_offset = last_batch.next_offset
        self.drain()
    except StopIteration:  # a StopIteration leaking from here would end the caller's loop silently
        log.exception("StopIteration raised unpacking messageset")
        raise RuntimeError("StopIteration raised unpacking messageset")


def _library_records(self: Any, tp: Any, batch: Any) -> Iterator[Any]:
    """kafka-python's own record loop (without deserializers), for the batches ``_read``
    leaves to it."""
    from kafka import errors
    from kafka.consumer.fetcher import ConsumerRecord

    for record in batch:
        if self.check_crcs and not record.validate_crc():
            raise errors.CorruptRecordError(f"Record for partition {self.topic_partition} at offset "
                                            f"{record.offset} failed crc check")
        key, value, headers = record.key, record.value, record.headers
        self.records_read += 1
        self.bytes_read += record.size_in_bytes
        self.next_fetch_offset = record.offset + 1
        yield ConsumerRecord(tp.topic, tp.partition, self.leader_epoch, record.offset, record.timestamp,
                             record.timestamp_type, key, value, headers, record.checksum,
                             len(key) if key is not None else -1, len(value) if value is not None else -1,
                             _header_size(headers))
