"""Checkpoints on a compacted topic: the latest state of each stage partition, with offsets.

A checkpoint is one message keyed by what it describes (``join:3``, ``eval:1``) under the
deployment's consumer group (``<group>/join:3``), so two deployments sharing the topic never
resume from each other's state; compaction keeps the latest per key. Restoring reads the
topic from the beginning to its end once. A checkpoint of a release before groups were in the
keys (``join:3``) is resumed from when the group has none of its own, and deleted once the
group's own is saved.
Values are pickled Python objects compressed with zlib, and unpickling runs code: whoever can
write to the topic could run code in the workers. With a key (the environment variable named
by ``kafka.checkpoint_key_env``), every checkpoint carries an HMAC-SHA256 of its bytes, and one
without a valid MAC is refused before it is unpickled (its partition starts over, counted in
``refused``). Without a key the topic must be as trusted as the workers themselves.

A checkpoint larger than one message (``kafka.max_checkpoint_bytes``, which the topic's
``max.message.bytes`` matches) is written in parts: the parts under keys of their own
(``eval:1#<id>.<k>``), then, once the broker has acknowledged every part, a manifest under
the checkpoint's key naming them. A reader follows the latest manifest; a worker that dies
between parts and manifest leaves the previous checkpoint intact. The parts a manifest no
longer names are deleted (tombstones) after the next checkpoint of that key. Why parts: at
the memory bounds (``limits.max_pending_impressions``, ``limits.max_held_examples``) a
partition's state compresses to hundreds of megabytes, far over what one Kafka message
should carry; a checkpoint the producer refuses is no checkpoint at all.

``BackgroundSaver`` compresses and sends a stage's checkpoints on a thread of its own: the
stage pickles its state under its lock (a consistent snapshot) and goes on while the bytes
are compressed and acknowledged; the offsets a checkpoint reflects are handed back for the
stage to commit only once the broker has acknowledged it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import pickle
import threading
import time
import uuid
import zlib
from typing import Any, Callable, Collection, Hashable, Sequence, Union

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from .topics import position


log = logging.getLogger("stream_lis.checkpoints")


def snapshot(obj: Any) -> bytes:
    """The uncompressed checkpoint of ``obj``: the part that must happen while it holds still."""
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


#: A checkpoint's uncompressed bytes, or a function that makes them (encoding deferred).
Snapshot = Union[bytes, Callable[[], bytes]]


def _materialise(raw: Snapshot) -> bytes:
    return raw() if callable(raw) else raw


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


#: A manifest (the value of a checkpoint written in parts): this, then JSON ``{"id", "parts",
#: "bytes"}``. Neither a zlib stream nor a signed checkpoint starts with it.
MANIFEST = b"SLCM"
#: Room a message keeps for its key and the record's framing, below ``max.message.bytes``.
_FRAMING = 4096
#: Parts no manifest names are deleted when a worker takes their partition over and they are
#: this old: a crash between parts and manifest left them (a younger part may belong to a
#: save still on its way).
ORPHAN_AGE_S = 600.0
#: How long a restore reads the checkpoint topic again after a retriable client error (the
#: broker just back from an outage) at most, and the pause between two reads (seconds).
READ_RETRY_S = 120.0
READ_RETRY_PAUSE_S = 1.0


class CheckpointTopicUnavailable(KafkaError):
    """The checkpoint topic has no partitions in the broker's metadata: it is missing, this
    client may not read it, or its leaders are not elected yet. Read as "no checkpoints",
    every partition given would start over without its state, silently, while its state may
    be on the topic; so the read is tried again (retriable) and then fails the restore: the
    worker's restart makes the topic if it is missing and reads it again."""

    retriable = True


def part_key(key: str, ckid: str, k: int) -> str:
    """The key of part ``k`` of checkpoint ``ckid`` of ``key``.

    >>> part_key("eval:1", "a1b2", 0), split_part_key("eval:1#a1b2.0")
    ('eval:1#a1b2.0', ('eval:1', 'a1b2', 0))
    """
    return f"{key}#{ckid}.{k}"


def split_part_key(pk: str) -> tuple[str, str, int] | None:
    """``(key, checkpoint id, part)`` of a part key; ``None`` for a checkpoint's own key."""
    key, sep, rest = pk.partition("#")
    ckid, dot, k = rest.rpartition(".")
    if not sep or not dot or not k.isdigit():
        return None
    return key, ckid, int(k)


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
    ``max_bytes``: the largest message; a larger checkpoint goes in parts (module doc).
    """

    def __init__(self, topic: str, producer: KafkaProducer, client_kw: dict[str, Any], max_bytes: int,
                 key: bytes | None = None, group: str = "", read_retry_s: float = READ_RETRY_S) -> None:
        """``group``: the deployment's consumer group, under which keys are written (none: the
        plain keys, as before groups were in them). ``read_retry_s``: how long ``load_all``
        reads the topic again after retriable client errors; a restore runs in a rebalance
        listener, which must end within the consumers' rebalance timeout (the member leaves
        the group otherwise), so the worker passes a part of that."""
        self.topic = topic
        self.ns = f"{group}/" if group else ""
        #: Plain key -> the group-less key its checkpoint was resumed from (deleted once the
        #: group's own is saved, so no later deployment resumes from it).
        self._legacy: dict[str, str] = {}
        self.producer = producer
        self.client_kw = client_kw
        self.max_bytes = max_bytes
        self.key = key
        self.read_retry_s = read_retry_s
        #: Checkpoints refused when loading (bad or missing MAC, missing parts, unreadable):
        #: their partitions started over.
        self.refused = 0
        #: Checkpoint key -> (id, parts) of its last checkpoint written in parts: deleted once
        #: a newer checkpoint of the key is acknowledged.
        self._parts: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    @property
    def part_bytes(self) -> int:
        return max(1024, self.max_bytes - _FRAMING)

    def save(self, key: str, state: Any) -> int:
        return self.save_snapshot(key, snapshot(state))

    def save_snapshot(self, key: str, raw: Snapshot) -> int:
        """Compress and send what ``snapshot`` made (made here when deferred); returns its size
        once acknowledged (in parts when it is larger than a message)."""
        plain, key = key, self.ns + key
        blob = compress(_materialise(raw))
        if self.key is not None:
            blob = sign(blob, self.key)
        send, size = self.producer.send, self.part_bytes
        if len(blob) <= size:
            send(self.topic, key=key.encode(), value=blob).get(timeout=60)
            written = None
        else:
            ckid = uuid.uuid4().hex[:12]
            n = -(-len(blob) // size)
            view = memoryview(blob)
            try:
                sent = [send(self.topic, key=part_key(key, ckid, k).encode(), value=bytes(view[k * size:(k + 1) * size]))
                        for k in range(n)]
                for fut in sent:
                    fut.get(timeout=60)
                manifest = MANIFEST + json.dumps({"id": ckid, "parts": n, "bytes": len(blob)}).encode()
                send(self.topic, key=key.encode(), value=manifest).get(timeout=60)
            except Exception:
                self._delete_parts(key, ckid, n)  # best effort: a failed save leaves no parts behind
                raise
            written = (ckid, n)
            log.info("checkpoint %s saved in %d parts (%.1f MB)", key, n, len(blob) / 1e6)
        with self._lock:
            before = self._parts.pop(key, None)
            if written is not None:
                self._parts[key] = written
            legacy = self._legacy.pop(plain, None)
            legacy_parts = self._parts.pop(legacy, None) if legacy is not None else None
        if before is not None:
            self._delete_parts(key, *before)
        if legacy is not None:
            self.producer.send(self.topic, key=legacy.encode(), value=None)
            if legacy_parts is not None:
                self._delete_parts(legacy, *legacy_parts)
            log.info("checkpoint %s saved under group key %s: the group-less one it resumed from is deleted", legacy, key)
        return len(blob)

    def _delete_parts(self, key: str, ckid: str, n: int) -> None:
        """Tombstones for the parts of an older checkpoint (compaction then drops them)."""
        for k in range(n):
            self.producer.send(self.topic, key=part_key(key, ckid, k).encode(), value=None).add_errback(
                lambda exc, k=k: log.warning("part %d of an old checkpoint of %s not deleted: %s", k, key, exc))

    def _read(self, consumer: KafkaConsumer, wanted: Callable[[str], bool],
              beat: Callable[[], None]) -> tuple[dict[str, bytes], dict[str, tuple[bytes, float]]]:
        """The checkpoint topic read from its beginning to its end: the latest value of every
        wanted key, and of every part (key -> (value, timestamp in seconds))."""
        latest: dict[str, bytes] = {}
        parts: dict[str, tuple[bytes, float]] = {}
        parts_of_topic = consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(parts_of_topic)]
        if not tps:
            raise CheckpointTopicUnavailable(f"topic {self.topic} has no partitions in the broker's metadata (missing, "
                                             "not readable by this client, or its leaders not elected yet)")
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        while any(position(consumer, tp) < end[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=1000).values():
                beat()
                for msg in batch:
                    k = msg.key.decode()
                    split = split_part_key(k)
                    if split is not None:
                        if not wanted(split[0]):
                            continue
                        if msg.value is None:
                            parts.pop(k, None)
                        else:
                            parts[k] = (msg.value, msg.timestamp / 1000)
                    elif wanted(k):
                        if msg.value is None:
                            latest.pop(k, None)
                        else:
                            latest[k] = msg.value
        return latest, parts

    def load_all(self, prefix: str, keys: Collection[str] | None = None,
                 progress: Callable[[], None] | None = None) -> dict[str, Any]:
        """Latest checkpoint of every key starting with ``prefix`` (of ``keys`` alone, when
        given: the partitions the caller takes over, whose orphan parts it may delete).
        ``progress()`` is called at each poll that brings records and each checkpoint read
        (a restore of many partitions takes minutes: it is not a stall)."""
        beat = progress if progress is not None else (lambda: None)
        ns = self.ns
        consumer = KafkaConsumer(enable_auto_commit=False, max_partition_fetch_bytes=self.max_bytes,
                                 fetch_max_bytes=self.max_bytes, **self.client_kw)
        def wanted(k: str) -> bool:
            """Whether a full key (``<group>/join:3`` or group-less ``join:3``) is ours to read."""
            if ns and k.startswith(ns):
                k = k[len(ns):]
            elif not k.startswith(prefix):  # another group's (or another stage's)
                return False
            return k.startswith(prefix) and (keys is None or k in keys)
        try:
            deadline, said = time.monotonic() + self.read_retry_s, False
            while True:
                try:
                    latest, parts = self._read(consumer, wanted, beat)
                    break
                except KafkaError as exc:
                    # Just after an outage the broker can answer before it knows its cluster
                    # (an empty broker list) or time out once more: a restore that gave up then
                    # failed the rebalance listener, and the stage and worker with it.
                    if not exc.retriable or time.monotonic() >= deadline:
                        raise
                    if not said:
                        log.warning("checkpoints: reading topic %s failed (%s); reading it again (for up to %.0f s)",
                                    self.topic, exc, self.read_retry_s)
                        said = True
                    beat()
                    time.sleep(READ_RETRY_PAUSE_S)
        finally:
            consumer.close()
        out: dict[str, Any] = {}
        named: dict[str, str] = {}  # checkpoint key -> id of the parts its manifest names
        chosen: dict[str, str] = {}  # plain key -> the full key it is read from: the group's own first
        for full in sorted(latest, key=lambda f: not (ns and f.startswith(ns))):
            chosen.setdefault(full[len(ns):] if ns and full.startswith(ns) else full, full)
        for plain, k in chosen.items():
            v = latest[k]
            if v.startswith(MANIFEST):
                v = self._assemble(k, v, parts, named)
                if v is None:
                    continue
            blob, why = verify(v, self.key)
            if blob is None:
                self.refused += 1
                log.error("checkpoint %s refused (%s): it was not written by a worker holding this "
                          "checkpoint key; that partition starts over", k, why)
                continue
            if why == "unverified":
                log.warning("checkpoint %s is signed but this worker has no checkpoint key: loaded unverified", k)
            beat()
            try:
                out[plain] = unpack(blob)
            except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint must not stop the worker
                self.refused += 1
                log.error("checkpoint %s refused: it cannot be read (%s: %s); that partition starts over",
                          k, type(exc).__name__, exc)
                continue
            if k == plain and ns:
                with self._lock:
                    self._legacy[plain] = k
                log.info("checkpoint %s (written before checkpoints were keyed by group) resumed by group %s",
                         k, ns[:-1])
        if keys is not None:
            self._delete_orphans(named, parts)
        return out

    def _assemble(self, key: str, manifest: bytes, parts: dict[str, tuple[bytes, float]],
                  named: dict[str, str]) -> bytes | None:
        """The checkpoint a manifest names, joined from its parts (``None``: refused); records
        in ``named`` the id of the parts it names."""
        try:
            m = json.loads(manifest[len(MANIFEST):])
            names = [part_key(key, m["id"], k) for k in range(int(m["parts"]))]
            size = int(m["bytes"])
        except (ValueError, KeyError, TypeError) as exc:
            self.refused += 1
            log.error("checkpoint %s refused: its manifest cannot be read (%s); that partition starts over", key, exc)
            return None
        named[key] = m["id"]
        missing = [n for n in names if n not in parts]
        blob = b"".join(parts[n][0] for n in names) if not missing else b""
        if missing or len(blob) != size:
            self.refused += 1
            log.error("checkpoint %s refused: %s; that partition starts over", key,
                      f"{len(missing)} of its {len(names)} parts are missing" if missing
                      else f"its parts hold {len(blob):,} bytes, its manifest says {size:,}")
            return None
        with self._lock:
            self._parts[key] = (m["id"], len(names))  # deleted after the next checkpoint of the key
        return blob

    def _delete_orphans(self, named: dict[str, str], parts: dict[str, tuple[bytes, float]]) -> None:
        """Delete parts no manifest names (a save that died before its manifest), once old."""
        now = time.time()
        for pk, (_, ts) in parts.items():
            key, ckid, _ = split_part_key(pk)  # type: ignore[misc]
            if named.get(key) != ckid and now - ts >= ORPHAN_AGE_S:
                self.producer.send(self.topic, key=pk.encode(), value=None)
                log.info("deleted orphan checkpoint part %s (no manifest names it)", pk)


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
    >>> saver.submit([("eval:0", b"state"), ("eval:1", b"larger state"), ("eval:2", b"")], {"tp0": 42}); saver.wait()
    >>> saver.acknowledged(), saver.acknowledged(), sizes  # on_saved: the largest snapshot's size
    ({'tp0': 42}, {}, [12])
    """

    def __init__(self, store: Any, name: str = "checkpoint-saver",
                 on_saved: Callable[[int], None] | None = None, progress: Callable[[], None] | None = None) -> None:
        self.store = store
        self.name = name
        #: Called on the saver's thread with the last message's size, once acknowledged.
        self.on_saved = on_saved
        #: Called on the saver's thread before each snapshot is saved: a stage waiting for a
        #: save of many partitions (a revocation, a stop) is making progress (``liveness``).
        self.progress = progress
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._acked: dict[Hashable, int] = {}
        self.failed = 0

    def busy(self) -> bool:
        """A checkpoint is still being saved (the stage skips this interval's)."""
        return self._thread is not None and self._thread.is_alive()

    def submit(self, snapshots: Sequence[tuple[str, Snapshot]], offsets: dict[Hashable, int]) -> None:
        """Save ``snapshots`` in order, then acknowledge ``offsets``. A snapshot is the bytes
        ``snapshot()`` made, or a function making them here, on the saver's thread, from a
        copy of the state that no longer changes (the join stage's frozen labellers)."""
        self.wait()
        self._thread = threading.Thread(target=self._save, args=(list(snapshots), dict(offsets)), name=self.name,
                                        daemon=True)
        self._thread.start()

    def _save(self, snapshots: list[tuple[str, Snapshot]], offsets: dict[Hashable, int]) -> None:
        try:
            size = 0  # the largest: what kafka.max_checkpoint_bytes is sized against
            for key, raw in snapshots:
                if self.progress is not None:
                    self.progress()
                size = max(size, self.store.save_snapshot(key, raw))
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
