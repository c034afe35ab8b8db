"""``external``: a preference dataset supplied by the user.

Either ``item -> vector`` (e.g. item-ID embeddings exported from a later ranking-model
snapshot: the paper's future-embedding probe) or ``item -> similar items``. Records are JSON
Lines ``{"item_id": ..., "vector": [...]}`` or ``{"item_id": ..., "items": [...]}``, read from
the file named by ``probes.external.path`` (in every runtime), or fed live through ``update`` /
``set_vector`` (the simulator's planted truth).

>>> p = ExternalProbe()
>>> p.update(b'{"item_id": "a", "vector": [0.5, -1.0]}'), p.update(b'{"item_id": "b", "items": ["a"]}')
(None, None)
>>> p.update(b'{"item_id": 3}')
'wrong_type'
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import msgspec
import numpy as np

from ..join import LabelledExample
from .base import Leaked, Probe
from .log import BehaviourLog


class PreferenceRecord(msgspec.Struct, forbid_unknown_fields=False):
    item_id: str
    vector: list[float] | None = None
    items: list[str] | None = None


_decoder = msgspec.json.Decoder(PreferenceRecord)


class ExternalProbe(Probe):
    """Looks each example's item up in the dataset; unknown items get no leaked feature."""

    name = "external"

    def __init__(self, records: Iterable[bytes] = ()) -> None:
        self.vectors: dict[str, list[float]] = {}
        self.similar: dict[str, list[str]] = {}
        self._dims = 0
        self.rejected = 0
        for line in records:
            if line.strip() and self.update(line) is not None:
                self.rejected += 1

    @classmethod
    def from_file(cls, path: str) -> "ExternalProbe":
        with open(path, "rb") as fh:
            return cls(fh)

    def set_vector(self, item_id: str, vector: list[float]) -> None:
        """Upsert one item's vector (a live feed, e.g. the simulator's planted truth)."""
        self.vectors[item_id] = list(vector)
        if len(vector) > self._dims:
            self._dims = len(vector)

    def update(self, raw: bytes) -> str | None:
        """Upsert one record; returns a reason when it is rejected."""
        try:
            rec = _decoder.decode(raw)
        except msgspec.ValidationError:
            return "wrong_type"
        except msgspec.DecodeError:
            return "unparseable"
        if rec.vector is not None:
            if not all(map(math.isfinite, rec.vector)):
                return "non_finite"
            self.set_vector(rec.item_id, rec.vector)
        if rec.items is not None:
            self.similar[rec.item_id] = ["ext:sim=" + s for s in dict.fromkeys(rec.items)]
        if rec.vector is None and rec.items is None:
            return "missing_field"
        return None

    def columns(self, examples: Sequence[LabelledExample], log: BehaviourLog | None, horizon_ms: int) -> Leaked:
        items = [ex.impression.item_id for ex in examples]
        d = self._dims
        values = None
        if d:
            values = np.full((len(items), d), np.nan)
            get = self.vectors.get
            for k, item in enumerate(items):
                v = get(item)
                if v is not None:
                    values[k, :len(v)] = v
        tokens = [self.similar.get(item, []) for item in items] if self.similar else None
        return Leaked([f"ext:v{k}" for k in range(d)], values, tokens, n=len(items))
