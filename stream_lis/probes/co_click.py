"""``co_click``: the top-k items co-clicked with this item in the future window.

The paper's "top-5 similar items from posterior behaviour" probe: users who click this item
in ``(t, t + H]`` and what else they click there. The paper found it adds little over what a
ranker already knows; the probe lets the stream say the same, or not, about your traffic.

>>> from stream_lis.events import Impression
>>> from stream_lis.join import LabelledExample
>>> from stream_lis.probes.log import BehaviourLog
>>> log = BehaviourLog()
>>> for u in ("u1", "u2"): log.add_click(u, "a", 60, u + "a"); log.add_click(u, "b", 61, u + "b")
>>> log.add_click("u1", "c", 62, "u1c")
>>> imp = Impression(impression_id="i", ts=50, user_id="u", item_id="a", experiment="e", arm="c")
>>> row = CoClickProbe(top_k=1).leaked([LabelledExample(imp, 0, None, 0)], log, 1000)[0]
>>> sorted(row), round(row["cc:log_users"], 4)   # b is co-clicked by both users, c by one
(['cc:item=b', 'cc:log_users'], 1.0986)
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..join import LabelledExample
from .base import Leaked, Probe, TokenRows
from .log import BehaviourLog

#: Co-clickers looked at per example: bounds the per-example cost on viral items.
MAX_USERS = 64
TOKEN = "cc:item="
#: ``cc:log_users`` by number of co-clickers (``math.log1p``; NaN: none, the feature is absent).
_LOG_USERS = np.array([math.nan] + [math.log1p(k) for k in range(1, MAX_USERS + 1)])


class CoClickProbe(Probe):
    name = "co_click"

    def __init__(self, top_k: int = 5) -> None:
        if top_k < 1:  # the kernel's top-k buffer has no room below 1 (and no bounds checks)
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.top_k = top_k

    def columns(self, examples: Sequence[LabelledExample], log: BehaviourLog, horizon_ms: int) -> Leaked:
        # One compiled loop over the click log's sorted columns for the whole release.
        top, n_users = log.clicks.co_clicked(examples, horizon_ms, self.top_k, MAX_USERS)
        hashes, strings = log.clicks.item_tokens(TOKEN)
        present = top >= 0
        indptr = np.zeros(len(examples) + 1, dtype=np.int64)
        np.cumsum(present.sum(axis=1), out=indptr[1:])
        chosen = top[present]  # row-major: each row's items, most co-clicked first
        values = _LOG_USERS[n_users][:, None]
        return Leaked(["cc:log_users"], values, TokenRows(indptr, hashes[chosen], strings[chosen]))
