"""Checkpoints on a compacted topic: the latest state of each stage partition, with offsets.

A checkpoint is one message keyed by what it describes (``join:3``, ``eval:1``); compaction
keeps the latest per key. Restoring reads the topic from the beginning to its end once.
Values are pickled Python objects compressed with zlib, and unpickling runs code: whoever can
write to the topic could run code in the workers. With a key (the environment variable named
by ``kafka.checkpoint_key_env``), every checkpoint carries an HMAC-SHA256 of its bytes, and one
without a valid MAC is refused before it is unpickled (its partition starts over, counted in
``refused``). Without a key the topic must be as trusted as the workers themselves.

``BackgroundSaver`` compresses and sends a stage's checkpoints on a thread of its own: the
stage pickles its state under its lock (a consistent snapshot) and goes on while the bytes
are compressed and acknowledged; the offsets a checkpoint reflects are handed back for the
stage to commit only once the broker has acknowledged it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import pickle
import threading
import zlib
from typing import Any, Callable, Hashable, Sequence

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


log = logging.getLogger("stream_lis.checkpoints")


def snapshot(obj: Any) -> bytes:
    """The uncompressed checkpoint of ``obj``: the part that must happen while it holds still."""
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def compress(raw: bytes) -> bytes:
    # Level 1: most of a checkpoint is float arrays, which higher levels barely shrink more.
    # zlib releases the GIL, so a BackgroundSaver compresses on another core.
    return zlib.compress(raw, 1)


def unpack(blob: bytes) -> Any:
    return pickle.loads(zlib.decompress(blob))


#: A signed checkpoint: this, the HMAC-SHA256 of the compressed bytes, then those bytes. An
#: unsigned one is the zlib stream alone (it starts with 0x78, never with this).
SIGNED = b"SLC1"
_MAC_BYTES = 32


def sign(blob: bytes, key: bytes) -> bytes:
    return SIGNED + hmac.new(key, blob, hashlib.sha256).digest() + blob


def verify(value: bytes, key: bytes | None) -> tuple[bytes | None, str]:
    """The compressed checkpoint inside ``value``, or ``None`` with why it is refused.

    With a key only a valid MAC passes. Without one an unsigned checkpoint passes, and so does
    a signed one, unverified (the key was removed from the config: nothing to check against,
    and without a key unsigned ones are accepted anyway).

    >>> v = sign(b"state", b"k")
    >>> verify(v, b"k"), verify(v, b"other")[1], verify(b"state", b"k")[1]
    ((b'state', 'ok'), 'bad MAC', 'unsigned')
    >>> verify(v, None), verify(b"state", None)
    ((b'state', 'unverified'), (b'state', 'ok'))
    """
    signed = value.startswith(SIGNED)
    if key is None:
        return (value[len(SIGNED) + _MAC_BYTES:], "unverified") if signed else (value, "ok")
    if not signed:
        return None, "unsigned"
    mac, blob = value[len(SIGNED):len(SIGNED) + _MAC_BYTES], value[len(SIGNED) + _MAC_BYTES:]
    if not hmac.compare_digest(mac, hmac.new(key, blob, hashlib.sha256).digest()):
        return None, "bad MAC"
    return blob, "ok"


class CheckpointStore:
    """Save and load checkpoints; ``save`` returns once the broker acknowledged.

    ``key``: sign every checkpoint and load only validly signed ones (see the module doc).
    """

    def __init__(self, topic: str, producer: KafkaProducer, client_kw: dict[str, Any], max_bytes: int,
                 key: bytes | None = None) -> None:
        self.topic = topic
        self.producer = producer
        self.client_kw = client_kw
        self.max_bytes = max_bytes
        self.key = key
        #: Checkpoints refused when loading (bad or missing MAC): their partitions started over.
        self.refused = 0

    def save(self, key: str, state: Any) -> int:
        return self.save_snapshot(key, snapshot(state))

    def save_snapshot(self, key: str, raw: bytes) -> int:
        """Compress and send what ``snapshot`` made; returns the message's size once acknowledged."""
        blob = compress(raw)
        if self.key is not None:
            blob = sign(blob, self.key)
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
            out = {}
            for k, v in latest.items():
                blob, why = verify(v, self.key)
                if blob is None:
                    self.refused += 1
                    log.error("checkpoint %s refused (%s): it was not written by a worker holding this "
                              "checkpoint key; that partition starts over", k, why)
                    continue
                if why == "unverified":
                    log.warning("checkpoint %s is signed but this worker has no checkpoint key: loaded unverified", k)
                out[k] = unpack(blob)
            return out
        finally:
            consumer.close()


class BackgroundSaver:
    """One checkpoint at a time, compressed and sent on a thread of its own.

    Why: an evaluation checkpoint is megabytes per partition (learner weights, score windows,
    behaviour logs). Compressing it and waiting for the broker under the stage's lock stopped
    the stage, and the scrapes that take that lock, for a large part of a second per interval.

    ``submit`` takes the snapshots of one checkpoint and the consumer offsets they reflect;
    ``acknowledged`` returns the offsets of the checkpoints the broker has acknowledged since
    the last call: committing an offset earlier could skip records no durable state holds. A
    failed save is logged and its offsets are never handed back; the next interval saves a
    newer state.

    >>> class Store:
    ...     def save_snapshot(self, key, raw): return len(raw)
    >>> sizes = []
    >>> saver = BackgroundSaver(Store(), on_saved=sizes.append)
    >>> saver.submit([("eval:0", b"state")], {"tp0": 42}); saver.wait()
    >>> saver.acknowledged(), saver.acknowledged(), sizes
    ({'tp0': 42}, {}, [5])
    """

    def __init__(self, store: Any, name: str = "checkpoint-saver",
                 on_saved: Callable[[int], None] | None = None) -> None:
        self.store = store
        self.name = name
        #: Called on the saver's thread with the last message's size, once acknowledged.
        self.on_saved = on_saved
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._acked: dict[Hashable, int] = {}
        self.failed = 0

    def busy(self) -> bool:
        """A checkpoint is still being saved (the stage skips this interval's)."""
        return self._thread is not None and self._thread.is_alive()

    def submit(self, snapshots: Sequence[tuple[str, bytes]], offsets: dict[Hashable, int]) -> None:
        """Save ``snapshots`` (key, ``snapshot()`` bytes) in order, then acknowledge ``offsets``."""
        self.wait()
        self._thread = threading.Thread(target=self._save, args=(list(snapshots), dict(offsets)), name=self.name,
                                        daemon=True)
        self._thread.start()

    def _save(self, snapshots: list[tuple[str, bytes]], offsets: dict[Hashable, int]) -> None:
        try:
            size = 0
            for key, raw in snapshots:
                size = self.store.save_snapshot(key, raw)
        except Exception:  # noqa: BLE001 - the stage must go on; the next interval retries
            self.failed += 1
            log.exception("checkpoint %s not saved; its offsets stay uncommitted",
                          ", ".join(k for k, _ in snapshots))
            return
        if self.on_saved is not None:
            self.on_saved(size)
        with self._lock:
            self._acked.update(offsets)

    def acknowledged(self) -> dict[Hashable, int]:
        """Offsets of the checkpoints acknowledged since the last call (to commit now)."""
        with self._lock:
            out, self._acked = self._acked, {}
        return out

    def wait(self) -> None:
        """Until the checkpoint being saved, if any, is acknowledged or failed."""
        if self._thread is not None:
            self._thread.join()
