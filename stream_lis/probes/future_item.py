"""``future_item``: the item's behaviour in the future window, a streaming future item-ID embedding.

The paper's strongest probe replaces the ranker's item-ID embedding with one trained ``n``
days later. Its streaming analogue is what the item will do next: its impressions and clicks
in ``(t, t + H]`` (the example's own impression and click left out), as a smoothed CTR lift
over the global CTR and a log volume.

>>> from stream_lis.events import Impression
>>> from stream_lis.join import LabelledExample
>>> from stream_lis.probes.log import BehaviourLog
>>> log = BehaviourLog()
>>> for k in range(10): log.add_impression("a", 100 + k)
>>> for k in range(5): log.add_click(f"u{k}", "a", 120 + k, f"x{k}")
>>> imp = Impression(impression_id="i", ts=50, user_id="u", item_id="a", experiment="e", arm="c")
>>> row = FutureItemProbe(prior_strength=5).leaked([LabelledExample(imp, 0, None, 0)], log, 1000)[0]
>>> round(row["fi:ctr_lift"], 3) > 0, round(row["fi:log_imps"], 3)
(True, 2.398)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..features import logits
from ..join import LabelledExample
from . import release
from .base import Leaked, Probe
from .log import BehaviourLog


#: Pseudo-impressions (at one pseudo-click) smoothing the window-wide base rate.
BASE_RATE_PRIOR = 20.0
NAMES = ["fi:ctr_lift", "fi:log_imps"]


class FutureItemProbe(Probe):
    """Smoothed future CTR (as a logit lift over the global CTR) and future volume."""

    name = "future_item"

    def __init__(self, prior_strength: float = 20.0) -> None:
        self.prior_strength = prior_strength

    def columns(self, examples: Sequence[LabelledExample], log: BehaviourLog, horizon_ms: int) -> Leaked:
        a = self.prior_strength
        rel = release.columns(examples)
        t = rel.ts
        end = t + horizon_ms
        n, c, n_all, c_all = log.counts(rel.item_ids, t, end)
        # The example's own click is the label, not preference data: leave it out when the log
        # has it (a click that came late is not logged, and must not count as -1).
        own = np.zeros(len(examples), dtype=np.int64)
        positive = np.flatnonzero(rel.labels == 1)
        if len(positive):
            clicked, iids = log.clicked, rel.impression_ids
            own[positive] = [(ts := clicked.get(iids[k])) is not None and t0 < ts <= t0 + horizon_ms
                             for k, t0 in zip(positive.tolist(), t[positive].tolist())]
        c = c - own
        c_all = c_all - own
        # Base rate: every item's CTR over the same window (a function of the events alone).
        p0 = (c_all + 1.0) / (n_all + BASE_RATE_PRIOR)
        ctr = (c + a * p0) / (n + a)
        out = np.column_stack([logits(ctr) - logits(p0), np.log1p(n)])
        return Leaked(NAMES, out)

