"""Checkpoints on a compacted topic: the latest state of each stage partition, with offsets.

A checkpoint is one message keyed by what it describes (``join:3``, ``eval:1``); compaction
keeps the latest per key. Restoring reads the topic from the beginning to its end once.
Values are pickled Python objects compressed with zlib: the topic must be as trusted as the
workers themselves (it is written by nobody else).
"""

from __future__ import annotations

import pickle
import zlib
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def pack(obj: Any) -> bytes:
    return zlib.compress(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), 1)


def unpack(blob: bytes) -> Any:
    return pickle.loads(zlib.decompress(blob))


class CheckpointStore:
    """Save and load checkpoints; ``save`` returns once the broker acknowledged."""

    def __init__(self, topic: str, producer: KafkaProducer, client_kw: dict[str, Any], max_bytes: int) -> None:
        self.topic = topic
        self.producer = producer
        self.client_kw = client_kw
        self.max_bytes = max_bytes

    def save(self, key: str, state: Any) -> int:
        blob = pack(state)
        self.producer.send(self.topic, key=key.encode(), value=blob).get(timeout=60)
        return len(blob)

    def load_all(self, prefix: str) -> dict[str, Any]:
        """Latest checkpoint of every key starting with ``prefix``."""
        consumer = KafkaConsumer(enable_auto_commit=False, max_partition_fetch_bytes=self.max_bytes,
                                 fetch_max_bytes=self.max_bytes, **self.client_kw)
        try:
            parts = consumer.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            if not tps:
                return {}
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            latest: dict[str, bytes] = {}
            while any(consumer.position(tp) < end[tp] for tp in tps):
                for batch in consumer.poll(timeout_ms=1000).values():
                    for msg in batch:
                        k = msg.key.decode()
                        if k.startswith(prefix) and msg.value is not None:
                            latest[k] = msg.value
            return {k: unpack(v) for k, v in latest.items()}
        finally:
            consumer.close()
