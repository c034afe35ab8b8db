"""``external``: a preference dataset supplied by the user.

Either ``item -> vector`` (e.g. item-ID embeddings exported from a later ranking-model
snapshot: the paper's future-embedding probe) or ``item -> similar items``. Records are JSON
Lines ``{"item_id": ..., "vector": [...]}`` or ``{"item_id": ..., "items": [...]}``, read from
the file named by ``probes.external.path`` (in every runtime), from the compacted
``preferences`` topic (the Kafka worker: ``runtime/kafka/preferences.py``), or fed live through
``update`` / ``set_vector`` (the simulator's planted truth).

>>> p = ExternalProbe()
>>> p.update(b'{"item_id": "a", "vector": [0.5, -1.0]}'), p.update(b'{"item_id": "b", "items": ["a"]}')
(None, None)
>>> p.update(b'{"item_id": 3}'), p.update(b'{"item_id": "c", "vector": [1.0]}', key="d")
('wrong_type', 'key_mismatch')
>>> p.delete("a"), p.delete("a"), p.n_items
(True, False, 1)
"""

from __future__ import annotations

import logging
from array import array
from typing import Iterable, Sequence

import msgspec
import numpy as np

from ..events import MAX_ABS_VALUE, FeatureValue, validation_reason
from ..join import LabelledExample
from ..jsonl_table import apply_lines, load_file
from . import release
from .base import Leaked, Probe
from .log import BehaviourLog


class PreferenceRecord(msgspec.Struct, forbid_unknown_fields=False):
    item_id: str
    vector: list[FeatureValue] | None = None
    items: list[str] | None = None


_decoder = msgspec.json.Decoder(PreferenceRecord)
log = logging.getLogger("stream_lis.probes.external")

#: Why a preference record is rejected (a bounded metric label), and what that means.
REJECT_DETAILS = {
    "unparseable": "not a JSON object",
    "wrong_type": "item_id must be a string, vector a list of numbers, items a list of strings",
    "non_finite": "vector holds NaN or infinity",
    "out_of_range": f"vector holds a value beyond +-{MAX_ABS_VALUE:g} (events.MAX_ABS_VALUE)",
    "missing_field": "neither vector nor items",
    "key_mismatch": "the record's key is not its item_id (compaction would keep the wrong record)",
}


class ExternalProbe(Probe):
    """Looks each example's item up in the dataset; unknown items get no leaked feature."""

    name = "external"

    def __init__(self, records: Iterable[bytes] = ()) -> None:
        # Packed doubles: 8 bytes a coordinate instead of a Python float's 32.
        self.vectors: dict[str, array] = {}
        self.similar: dict[str, list[str]] = {}
        self._dims = 0
        self._missing = array("d")  # the row of an item without a vector: NaN, ``_dims`` long
        self._columns: list[str] = []
        #: (line number, reason) of every record of ``records`` that was rejected.
        self.rejected = apply_lines(records, self.update)

    @classmethod
    def from_file(cls, path: str) -> "ExternalProbe":
        """The dataset in a JSON Lines file; rejected lines are logged with their reasons."""
        probe = cls()
        probe.rejected = load_file(path, "probes.external.path", probe.update, log,
                                   lambda: f"{probe.n_items} items loaded")
        return probe

    @property
    def n_items(self) -> int:
        """Items the dataset has a vector or similar items for."""
        return len(self.vectors.keys() | self.similar.keys())

    def set_vector(self, item_id: str, vector: list[float]) -> None:
        """Upsert one item's vector (a live feed, e.g. the simulator's planted truth)."""
        self.vectors[item_id] = array("d", vector)
        if len(vector) > self._dims:
            self._dims = len(vector)

    @staticmethod
    def parse(raw: bytes) -> PreferenceRecord | str:
        """The record, or why it is rejected (``REJECT_DETAILS``); stores nothing."""
        try:
            rec = _decoder.decode(raw)
        except msgspec.ValidationError as exc:
            # 1e999 (JSON's only way to write infinity) is "Number out of range", as for events.
            reason = validation_reason(str(exc))
            return reason if reason in ("non_finite", "out_of_range") else "wrong_type"
        except msgspec.DecodeError:
            return "unparseable"
        if rec.vector is None and rec.items is None:
            return "missing_field"
        return rec

    def update(self, raw: bytes, key: str | None = None) -> str | None:
        """Upsert one record; returns a reason (``REJECT_DETAILS``) when it is rejected.

        ``key``: the record's key on a compacted topic, which must be its item id.
        """
        rec = self.parse(raw)
        if isinstance(rec, str):
            return rec
        if key is not None and key != rec.item_id:
            return "key_mismatch"
        if rec.vector is not None:
            self.set_vector(rec.item_id, rec.vector)
        if rec.items is not None:
            self.similar[rec.item_id] = ["ext:sim=" + s for s in dict.fromkeys(rec.items)]
        return None

    def delete(self, item_id: str) -> bool:
        """Forget an item (a tombstone on the topic); False when it was not there."""
        had = self.vectors.pop(item_id, None) is not None
        return (self.similar.pop(item_id, None) is not None) or had

    def columns(self, examples: Sequence[LabelledExample], log: BehaviourLog | None, horizon_ms: int) -> Leaked:
        items = release.columns(examples).item_ids
        n, d = len(items), self._dims
        values = None
        if d:
            miss = self._missing
            if len(miss) != d:
                miss = self._missing = array("d", [np.nan]) * d
            get = self.vectors.get
            vecs = [get(item, miss) for item in items]
            if min(map(len, vecs), default=d) == d:
                # Every vector at full length (the usual dataset): one copy of their packed
                # doubles, not a numpy slice assignment per example.
                values = np.frombuffer(bytearray().join(vecs), dtype=np.float64).reshape(n, d)
            else:
                values = np.full((n, d), np.nan)
                for k, v in enumerate(vecs):
                    values[k, :len(v)] = v
        tokens = [self.similar.get(item, []) for item in items] if self.similar else None
        return Leaked(self._names(d), values, tokens, n=n)

    def _names(self, d: int) -> list[str]:
        if len(self._columns) != d:
            self._columns = [f"ext:v{k}" for k in range(d)]
        return self._columns
