"""What travels on the internal ``labelled`` topic, and which partition an arm lives on.

Each message is an envelope: the join-stage partition it came from, that partition's
watermark when it was sent, and the arm records the partition produced in one poll for one
``labelled`` partition (none: a watermark heartbeat). Batching records per message keeps the
per-message cost of the clients off the per-impression path.

>>> from stream_lis.events import Impression
>>> from stream_lis.labeller import Seen
>>> imp = Impression(impression_id="i", ts=1, user_id="u", item_id="a", experiment="e", arm="c")
>>> env = decode_envelope(encode_envelope(Envelope(3, 1000, [Seen(imp)])))
>>> env.src, env.watermark, env.records[0].impression.item_id
(3, 1000, 'a')
>>> arm_partition(("e", "treatment"), 4, {"e": ["control", "treatment"]})
2
"""

from __future__ import annotations

from zlib import crc32

import msgspec

from ...events import Impression
from ...labeller import Clicked, Labelled, Seen


class Envelope(msgspec.Struct, array_like=True):
    """``idle``: the source partition has had no input for a while (heartbeats only).
    ``checkpointed``: the source's watermark at its last checkpoint. A restarted source
    repeats records only from there on, so the receiver must remember what it applied back
    to that point, and may forget anything older. ``ended``: the source's input ended (a
    backfill's end, ``watermark.idle_ends``) at this event time; ``None`` while it flows.
    ``origin``: the deployment that sent it (``origin_of`` its consumer group; 0: a release
    before origins), so an evaluation stage ignores another deployment's envelopes on a
    shared ``labelled`` topic: their records and, above all, their watermarks.

    Fields are only ever added at the end, with a default: a worker of the previous release
    reads a newer envelope (extra trailing fields are ignored) and a newer one reads an older
    envelope (the defaults), so a rolling upgrade mixes them safely."""

    src: int
    watermark: int
    records: list[Seen | Clicked | Labelled] = []
    idle: bool = False
    checkpointed: int = -(1 << 62)
    ended: int | None = None
    origin: int = 0


def origin_of(group_id: str) -> int:
    """A deployment's mark on its envelopes: a stable hash of its consumer group, never 0.

    >>> origin_of("stream-lis") == origin_of("stream-lis") != origin_of("staging")
    True
    """
    return crc32(group_id.encode()) or 1


def slim(rec: Seen | Clicked) -> Seen | Clicked:
    """A ``Seen`` / ``Clicked`` record as the evaluation stage reads it: the impression's ids,
    arm and time (behaviour log, dedupe), without its features, score and embedding. Those
    travel once, with the ``Labelled`` record the learners read; sending them with every
    record too would double what both stages encode and decode.

    >>> from stream_lis.events import Impression
    >>> imp = Impression(impression_id="i", ts=1, user_id="u", item_id="a", experiment="e", arm="c",
    ...                  score=0.5, embedding=[1.0, 2.0])
    >>> s = slim(Clicked(imp, 5))
    >>> (s.impression.item_id, s.impression.embedding, s.ts)
    ('a', None, 5)
    """
    imp = rec.impression
    if imp.score is None and not imp.features and not imp.dense and not imp.embedding:
        return rec
    bare = Impression(impression_id=imp.impression_id, ts=imp.ts, user_id=imp.user_id, item_id=imp.item_id,
                      experiment=imp.experiment, arm=imp.arm)
    return Seen(bare) if type(rec) is Seen else Clicked(bare, rec.ts)  # type: ignore[union-attr]


_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(Envelope)


def encode_envelope(env: Envelope) -> bytes:
    return _enc.encode(env)


def decode_envelope(data: bytes) -> Envelope:
    return _dec.decode(data)


def arm_key(experiment: str, arm: str) -> bytes:
    return f"{experiment}\x1f{arm}".encode()


def arm_partition(key: tuple[str, str], partitions: int, declared: dict[str, list[str]] | None = None) -> int:
    """Declared arms are spread evenly over the partitions (so a consumer group splits them);
    others go by a stable hash of (experiment, arm)."""
    if declared and key[0] in declared and key[1] in declared[key[0]]:
        flat = [(e, a) for e, arms in sorted(declared.items()) for a in arms]
        return (flat.index(key) * partitions // len(flat)) % partitions
    return crc32(arm_key(*key)) % partitions
