"""During a rolling upgrade, workers of two releases share the ``labelled`` topic: each must
read the other's envelopes. The envelope gained ``ended`` (the end of a backfill) and
``origin`` (the deployment); an envelope of the previous layout, written out here as it was,
and a current one must decode both ways, the missing fields taking their defaults (origin 0:
accepted by every deployment) and the extra ones ignored."""

from __future__ import annotations

import msgspec

from stream_lis.events import Impression
from stream_lis.labeller import Clicked, Labelled, Seen
from stream_lis.runtime.kafka.wire import Envelope, decode_envelope, encode_envelope


class PreviousEnvelope(msgspec.Struct, array_like=True):
    """``Envelope`` before ``ended`` was added."""

    src: int
    watermark: int
    records: list[Seen | Clicked | Labelled] = []
    idle: bool = False
    checkpointed: int = -(1 << 62)


IMP = Impression(impression_id="i", ts=5, user_id="u", item_id="a", experiment="e", arm="c")


def test_a_current_worker_reads_a_previous_envelope_as_not_ended():
    old = msgspec.msgpack.encode(PreviousEnvelope(2, 1_000, [Seen(IMP)], True, 900))
    env = decode_envelope(old)
    assert (env.src, env.watermark, env.idle, env.checkpointed, env.ended, env.origin) == (2, 1_000, True, 900, None, 0)
    assert env.records[0].impression == IMP


def test_a_previous_worker_reads_a_current_envelope_without_its_end():
    for ended in (None, 1_234, 1 << 62):
        new = encode_envelope(Envelope(3, 2_000, [Clicked(IMP, 7)], False, 1_500, ended, 12345))
        assert (decode_envelope(new).ended, decode_envelope(new).origin) == (ended, 12345)
        old = msgspec.msgpack.decode(new, type=PreviousEnvelope)
        assert (old.src, old.watermark, old.idle, old.checkpointed) == (3, 2_000, False, 1_500)
        assert old.records[0].impression == IMP and old.records[0].ts == 7
