"""``noise``: a negative control whose leaked features are pure noise.

Its LIS must be indistinguishable from 0; if its interval excludes 0 more often than the
confidence level allows, the intervals (or the learners) are not to be trusted. Values are
a function of the impression id alone, so replays and restarts give the same noise.

>>> from stream_lis.events import Impression
>>> from stream_lis.join import LabelledExample
>>> imp = Impression(impression_id="i", ts=0, user_id="u", item_id="a", experiment="e", arm="c")
>>> ex = LabelledExample(imp, 0, None, 0)
>>> NoiseProbe(dims=2).leaked([ex], None, 1) == NoiseProbe(dims=2).leaked([ex], None, 1)
True
"""

from __future__ import annotations

from typing import Sequence
from zlib import crc32

import numpy as np
from scipy.special import ndtri

from ..join import LabelledExample
from . import release
from .base import Leaked, Probe
from .log import BehaviourLog


class NoiseProbe(Probe):
    """``dims`` normal features (sd ``scale``) drawn from a hash of the impression id."""

    name = "noise"

    def __init__(self, dims: int = 1, scale: float = 0.3) -> None:
        self.dims = dims
        self.scale = scale
        self._names = [f"nz:{k}" for k in range(dims)]
        self._seeds = [crc32(f"{k}:".encode()) for k in range(dims)]

    def columns(self, examples: Sequence[LabelledExample], log: BehaviourLog | None, horizon_ms: int) -> Leaked:
        ids = [iid.encode() for iid in release.columns(examples).impression_ids]
        # crc32(f"{k}:{iid}"), continued from the CRC of the prefix "k:": no string formatted.
        h = np.array([[crc32(iid, seed) for iid in ids] for seed in self._seeds],
                     dtype=np.float64).reshape(self.dims, len(ids)).T
        return Leaked(self._names, self.scale * ndtri((h + 0.5) / 4294967296.0))
