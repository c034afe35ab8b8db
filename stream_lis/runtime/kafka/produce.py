"""Producing events into Kafka: the simulator or a JSON Lines file, at a chosen rate.

Each record goes to ``impressions`` or ``clicks`` by its ``type``, keyed by its impression id,
so both topics are co-partitioned with the default partitioner. A record that cannot be read
goes to ``impressions`` unkeyed, where the worker dead-letters it with its reason. A record
the client refuses to send (over its ``max_request_size``, 1 MiB) is reported by its number
and counted as failed, and the rest are sent. The final figure counts what the broker
acknowledged.

A preference dataset goes to the compacted ``preferences`` topic keyed by item id
(``preference_records``), which the worker's external probe reads; the arms' embeddings to
the compacted ``embeddings`` topic (``embedding_records``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TextIO

import msgspec
from kafka import KafkaProducer
from kafka.errors import KafkaError

from ...config import Config
from ...deadletter import dead_letter_key, encode_dead_letter
from ...labeller import InvalidSink
from ...embedding_table import EmbeddingTable, record_key
from ...events import Invalid
from ...jsonl_table import apply_lines
from ...probes.external import ExternalProbe
from .delivery import Delivery


class _Peek(msgspec.Struct):
    type: str = ""
    impression_id: str = ""


_peek = msgspec.json.Decoder(_Peek)


@dataclass
class ProduceResult:
    sent: int = 0
    acked: int = 0
    failed: int = 0
    seconds: float = 0.0


def route(raw: bytes, cfg: Config) -> tuple[str, bytes | None]:
    """(topic, key) of one record."""
    t = cfg.kafka.topics
    try:
        peek = _peek.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return t.impressions, None
    topic = t.clicks if peek.type == "click" else t.impressions
    return topic, peek.impression_id.encode() if peek.impression_id else None


Keyed = list[tuple[bytes, bytes | None]]


def keyed_records(lines: Iterable[bytes], parse: Callable[[bytes], Any], key: Callable[[Any], bytes]) -> tuple[Keyed, list[tuple[int, str]]]:
    """A side table's JSON Lines as (key, value) records for its compacted topic, and the
    (line number, reason) of every line ``parse`` rejects (it returns a reason string). Those
    cannot be sent: a compacted topic refuses records without a key, and one keyed wrongly
    would survive compaction in place of the right one."""
    out: Keyed = []

    def add(line: bytes) -> str | None:
        line = line.strip()
        rec = parse(line)
        if isinstance(rec, str):
            return rec
        out.append((key(rec), line))
        return None

    bad = apply_lines(lines, add)
    return out, bad


def preference_records(lines: Iterable[bytes], deletes: Iterable[str] = ()) -> tuple[Keyed, list[tuple[int, str]]]:
    """A preference dataset keyed by item id, then a tombstone (null value) per item to delete.

    >>> recs, bad = preference_records([b'{"item_id":"a","vector":[1.0]}', b'', b'{"item_id":"b"}'], ["c"])
    >>> recs, bad
    ([(b'a', b'{"item_id":"a","vector":[1.0]}'), (b'c', None)], [(3, 'missing_field')])
    """
    out, bad = keyed_records(lines, ExternalProbe.parse, lambda rec: rec.item_id.encode())
    return out + [(item.encode(), None) for item in deletes], bad


def embedding_records(lines: Iterable[bytes], max_dims: int = 1024,
                      deletes: Iterable[tuple[str | None, str, str]] = ()) -> tuple[Keyed, list[tuple[int, str]]]:
    """An embedding table keyed by ``record_key`` (one key per experiment, arm and item), then
    a tombstone per (experiment, arm, item) to delete.

    >>> recs, bad = embedding_records([b'{"arm":"t","item_id":"a","vector":[1.0]}', b'{"arm":"t"}'], deletes=[(None, "t", "b")])
    >>> recs, bad
    ([(b'["","t","a"]', b'{"arm":"t","item_id":"a","vector":[1.0]}'), (b'["","t","b"]', None)], [(2, 'missing_field')])
    """
    out, bad = keyed_records(lines, EmbeddingTable(max_dims=max_dims).parse,
                             lambda rec: record_key(rec.experiment, rec.arm, rec.item_id))
    return out + [(record_key(*d), None) for d in deletes], bad


def dead_letter_sink(producer: KafkaProducer, topic: str, delivery: Delivery | None = None) -> InvalidSink:
    """Where a worker's rejected records go: the dead-letter topic, keyed by input partition.
    ``delivery``: watches the sends (a stage that checkpoints the input they came from)."""

    def send(inv: Invalid, source: str) -> Any:
        """The send's future (a side table's feed waits for it before it marks the record sent)."""
        future = producer.send(topic, key=dead_letter_key(source), value=encode_dead_letter(inv, source))
        if delivery is not None:
            delivery.watch(future, topic)
        return future

    return send


def make_producer(client_kw: dict[str, Any], **extra: Any) -> KafkaProducer:
    """Acknowledged by every replica, one request in flight per broker (so retries cannot
    reorder a partition's messages); ``extra`` overrides batching and adds limits.

    A failed batch is retried until the client's ``delivery_timeout_ms`` (2 minutes): a broker
    that restarts or moves a partition's leadership costs a pause, not output. (A fixed count
    of retries gave up within half a second of a broker coming back, while its partitions
    still had no leader.) What still fails is caught by ``delivery.Delivery``."""
    kw: dict[str, Any] = {"linger_ms": 20, "batch_size": 256 * 1024, "compression_type": None}
    kw.update(extra)
    return KafkaProducer(acks="all", max_in_flight_requests_per_connection=1, **client_kw, **kw)


def produce(records: Iterable[Any], cfg: Config, client_kw: dict[str, Any], *, rate: float | None = None,
            progress: TextIO | None = sys.stderr, total: int | None = None,
            to: Callable[[Any], tuple[str, bytes | None, bytes | None]] | None = None,
            where: Callable[[int], str] | None = None) -> ProduceResult:
    """Send every record; ``rate`` in records/s (``None``: as fast as possible).

    ``to(record)`` gives a record's (topic, key, value); by default records are events,
    routed by ``route``. ``where(k)`` names the ``k``-th record (0-based) in a message about
    it (a file's ``name:line``); by default its number.
    """
    res = ProduceResult()
    producer = make_producer(client_kw)

    def ok(_meta: Any) -> None:
        res.acked += 1

    def err(_exc: BaseException) -> None:
        res.failed += 1

    start = last = time.monotonic()
    try:
        for rec in records:
            if to is None:
                topic, key = route(rec, cfg)
                value = rec
            else:
                topic, key, value = to(rec)
            if rate:
                # Record k goes out at k / rate: the first at once, none waited for after the last.
                ahead = res.sent / rate - (time.monotonic() - start)
                if ahead > 0.005:
                    time.sleep(ahead)
            res.sent += 1
            try:
                producer.send(topic, key=key, value=value).add_callback(ok).add_errback(err)
            except KafkaError as exc:
                # Refused before sending (a record over the producer's max_request_size, say):
                # say which and go on; the exit status reports it.
                res.failed += 1
                if progress is not None:
                    size = len(value) if value is not None else 0
                    what = where(res.sent - 1) if where is not None else f"record {res.sent:,}"
                    print(f"\r{what} ({size:,} bytes, for {topic}) not sent: {type(exc).__name__}: {exc}",
                          file=progress, flush=True)
            now = time.monotonic()
            if progress is not None and now - last >= 1.0:
                last = now
                pct = f" {100 * res.sent / total:.0f}%" if total else ""
                print(f"\rproduced {res.sent:,}{pct} ({res.sent / (now - start):,.0f}/s), acked {res.acked:,}",
                      end="", file=progress, flush=True)
        producer.flush()
    finally:
        producer.close()
        res.seconds = time.monotonic() - start
    if progress is not None:
        print(f"\rproduced {res.sent:,} record{'' if res.sent == 1 else 's'} in {res.seconds:.1f} s: "
              f"{res.acked:,} acknowledged, {res.failed:,} failed", file=progress, flush=True)
        # A load test at a rate this process could not reach must not read as one at that rate.
        reached = res.sent / res.seconds if res.seconds > 0 else 0.0
        # (Not for a run that ends within half a second of its schedule: flushing takes that.)
        if rate and reached < 0.9 * rate and res.seconds - (res.sent - 1) / rate > 0.5:
            print(f"below --rate {rate:,.0f}/s: reached {reached:,.0f}/s (one process sends what it can; run more "
                  "producers for more)", file=progress, flush=True)
    return res
