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

import math
from typing import Sequence

from ..features import Row, logit
from ..join import LabelledExample
from .base import Probe
from .log import BehaviourLog


#: Pseudo-impressions (at one pseudo-click) smoothing the window-wide base rate.
BASE_RATE_PRIOR = 20.0


class FutureItemProbe(Probe):
    """Smoothed future CTR (as a logit lift over the global CTR) and future volume."""

    name = "future_item"

    def __init__(self, prior_strength: float = 20.0) -> None:
        self.prior_strength = prior_strength

    def leaked(self, examples: Sequence[LabelledExample], log: BehaviourLog, horizon_ms: int) -> list[Row]:
        a = self.prior_strength
        rows = []
        for ex in examples:
            imp = ex.impression
            t, end = imp.ts, imp.ts + horizon_ms
            # Base rate: every item's CTR over the same window (a function of the events alone).
            n_all, c_all = log.totals(t, end)
            n = log.item_impressions(imp.item_id, t, end)
            clicks = log.item_clicks(imp.item_id, t, end)
            # The example's own click is the label, not preference data: leave it out when
            # the log has it (a click that came late is not logged, and must not count as -1).
            own = sum(1 for _, _, iid in clicks if iid == imp.impression_id)
            c = len(clicks) - own
            c_all -= own
            p0 = (c_all + 1.0) / (n_all + BASE_RATE_PRIOR)
            base = logit(p0)
            ctr = (c + a * p0) / (n + a)
            rows.append({"fi:ctr_lift": logit(ctr) - base, "fi:log_imps": math.log1p(n)})
        return rows
