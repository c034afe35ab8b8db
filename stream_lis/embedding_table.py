"""Each arm's MLLM item representation, from a table beside the stream.

An impression may carry its arm's representation inline (``embedding``); where it does not,
the ``mllm`` learner reads it from this table: ``(experiment, arm, item) -> vector``, the
way a team keeps one item-embedding table per model version. Records are JSON objects
``{"arm": ..., "item_id": ..., "vector": [...]}`` with an optional ``"experiment"``; without
one a record holds for the arm of that name in every experiment, and a record for the
experiment wins over it. The table is read from ``embeddings.path`` (JSON Lines; every
runtime) or from the compacted ``embeddings`` topic (the Kafka worker).

Time semantics: a vector is looked up when the example is evaluated (its horizon closed),
not at impression time, as the ``external`` probe reads its dataset: for a table per model
version that is the same vector. An inline ``embedding`` always wins over the table.

>>> t = EmbeddingTable()
>>> t.update(b'{"arm": "treatment", "item_id": "a", "vector": [0.5, 1.0]}'), t.get("exp", "treatment", "a")
(None, [0.5, 1.0])
>>> t.update(b'{"experiment": "exp", "arm": "treatment", "item_id": "a", "vector": [2.0]}'), t.get("exp", "treatment", "a")
(None, [2.0])
>>> t.get("other", "treatment", "a"), t.get("exp", "control", "a")
([0.5, 1.0], None)
>>> t.update(b'{"arm": "control", "item_id": "a"}')
'missing_field'
"""

from __future__ import annotations

import logging
from array import array
from typing import Iterable, Sequence

import msgspec

from .config import Config, ConfigError
from .events import MAX_ABS_VALUE, FeatureValue, validation_reason
from .join import LabelledExample
from .jsonl_table import apply_lines, load_file
from .names import unfit

log = logging.getLogger("stream_lis.embeddings")

Identity = tuple[str, str, str]  # (experiment or "" for every experiment, arm, item)


class EmbeddingRecord(msgspec.Struct, forbid_unknown_fields=False):
    arm: str
    item_id: str
    vector: list[FeatureValue]
    experiment: str | None = None


_decoder = msgspec.json.Decoder(EmbeddingRecord)
_key_encoder = msgspec.json.Encoder()

#: Why a record is rejected (a bounded metric label), and what that means.
REJECT_DETAILS = {
    "unparseable": "not a JSON object",
    "wrong_type": "arm, item_id and experiment must be strings, vector a list of numbers",
    "missing_field": "arm, item_id and vector are required",
    "non_finite": "vector holds NaN or infinity",
    "out_of_range": f"vector holds a value beyond +-{MAX_ABS_VALUE:g} (events.MAX_ABS_VALUE)",
    "oversized": "vector longer than limits.max_embedding_dims",
    "bad_name": "experiment or arm holds a control or invisible character (no impression naming it is accepted)",
}


def record_key(experiment: str | None, arm: str, item_id: str) -> bytes:
    """The key ``stream-lis embeddings`` gives a record on the compacted topic: one per
    (experiment, arm, item), so compaction keeps the latest vector of each."""
    return _key_encoder.encode([experiment or "", arm, item_id])


class EmbeddingTable:
    """``(experiment, arm, item) -> vector``; ``fill`` gives examples without an inline
    embedding the table's vector. Not thread-safe (the Kafka worker updates it under the
    evaluation stage's lock)."""

    def __init__(self, records: Iterable[bytes] = (), max_dims: int = 1024) -> None:
        self.max_dims = max_dims
        # Packed doubles: a list of Python floats costs 32 bytes a coordinate, four times
        # as much (a table of a million 256-dim vectors: 2 GiB instead of 8).
        self._vectors: dict[Identity, array] = {}
        # Topic key -> the identity its latest record set: a tombstone deletes by key, and a
        # key whose record changed identity no longer holds the old one (as after compaction).
        self._by_key: dict[str, Identity] = {}
        #: (line number, reason) of every record of ``records`` that was rejected.
        self.rejected = apply_lines(records, self.update)

    @classmethod
    def from_file(cls, path: str, max_dims: int = 1024) -> "EmbeddingTable":
        """The table in a JSON Lines file; rejected lines are logged with their reasons."""
        table = cls(max_dims=max_dims)
        table.rejected = load_file(path, "embeddings.path", table.update, log, lambda: f"{len(table)} vectors loaded")
        return table

    def __len__(self) -> int:
        return len(self._vectors)

    def parse(self, raw: bytes) -> EmbeddingRecord | str:
        """The record, or why it is rejected (``REJECT_DETAILS``); stores nothing."""
        try:
            rec = _decoder.decode(raw)
        except msgspec.ValidationError as exc:
            # 1e999 (JSON's only way to write infinity) is "Number out of range", as for events.
            reason = validation_reason(str(exc))
            return reason if reason in ("missing_field", "non_finite", "out_of_range") else "wrong_type"
        except msgspec.DecodeError:
            return "unparseable"
        if len(rec.vector) > self.max_dims:
            return "oversized"
        if unfit(rec.arm) or (rec.experiment and unfit(rec.experiment)):
            return "bad_name"
        return rec

    def update(self, raw: bytes, key: str | None = None) -> str | None:
        """Upsert one record (``key``: its key on the topic); returns a reason
        (``REJECT_DETAILS``) when it is rejected."""
        rec = self.parse(raw)
        if isinstance(rec, str):
            return rec
        ident = (rec.experiment or "", rec.arm, rec.item_id)
        if key is not None:
            old = self._by_key.get(key)
            if old is not None and old != ident:
                self._vectors.pop(old, None)
            self._by_key[key] = ident
        self._vectors[ident] = array("d", rec.vector)
        return None

    def delete(self, key: str) -> bool:
        """Forget what the record with this topic key set (a tombstone); False when the key
        holds nothing (a tombstone read again after a restart, say)."""
        ident = self._by_key.pop(key, None)
        return ident is not None and self._vectors.pop(ident, None) is not None

    def get(self, experiment: str, arm: str, item_id: str) -> list[float] | None:
        v = self._vectors.get((experiment, arm, item_id))
        if v is None:
            v = self._vectors.get(("", arm, item_id))
        return v.tolist() if v is not None else None

    def fill(self, examples: Sequence[LabelledExample]) -> Sequence[LabelledExample]:
        """The examples, those without an inline embedding carrying the table's vector for
        their arm and item (copies: the originals may be held elsewhere, and checkpointed)."""
        if not self._vectors:
            return examples
        get = self.get
        out = list(examples)
        for k, ex in enumerate(out):
            imp = ex.impression
            if imp.embedding:
                continue
            v = get(imp.experiment, imp.arm, imp.item_id)
            if v is not None:
                out[k] = msgspec.structs.replace(ex, impression=msgspec.structs.replace(imp, embedding=v))
        return out


def build_embeddings(cfg: Config, topic_fed: bool = False) -> EmbeddingTable | None:
    """The configured table (``None``: none configured, embeddings come inline only).

    ``topic_fed``: the caller feeds it from the embeddings topic (the Kafka worker).
    Anywhere else ``embeddings.from_topic`` alone would leave it empty: refused.
    """
    e, dims = cfg.embeddings, cfg.limits.max_embedding_dims
    if e.path:
        return EmbeddingTable.from_file(e.path, dims)
    if e.from_topic:
        if not topic_fed:
            raise ConfigError("embeddings.from_topic: only the Kafka worker reads the embeddings topic; set "
                              "embeddings.path to a JSON Lines file of the table for this command")
        return EmbeddingTable(max_dims=dims)
    return None
