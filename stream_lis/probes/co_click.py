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
from bisect import bisect_right
from typing import Sequence

import numpy as np

from ..join import LabelledExample
from .base import Leaked, Probe
from .log import BehaviourLog

#: Co-clickers looked at per example: bounds the per-example cost on viral items.
MAX_USERS = 64


class CoClickProbe(Probe):
    name = "co_click"

    def __init__(self, top_k: int = 5) -> None:
        self.top_k = top_k

    def columns(self, examples: Sequence[LabelledExample], log: BehaviourLog, horizon_ms: int) -> Leaked:
        tokens: list[list[str]] = []
        n_users = np.full((len(examples), 1), np.nan)
        k = self.top_k
        item_clk, user_clk, item_ts, user_ts = log.item_clk, log.user_clk, log.item_ts, log.user_ts
        for row, ex in enumerate(examples):
            imp = ex.impression
            t, end = imp.ts, imp.ts + horizon_ms
            # Bisect the event-time lists (plain ints) and walk the records in place: this
            # loop is the probe's cost.
            times = item_ts.get(imp.item_id)
            users: dict[str, None] = {}  # insertion-ordered set
            if times:
                clicks = item_clk[imp.item_id]
                own = imp.impression_id
                for j in range(bisect_right(times, t), bisect_right(times, end)):
                    _, user, iid = clicks[j]
                    if iid != own and user not in users:
                        users[user] = None
                        if len(users) == MAX_USERS:
                            break
            if not users:
                tokens.append([])
                continue
            item = imp.item_id
            counts: dict[str, int] = {}
            for user in users:
                their_ts = user_ts.get(user)
                if not their_ts:
                    continue
                theirs = user_clk[user]
                for j in range(bisect_right(their_ts, t), bisect_right(their_ts, end)):
                    other = theirs[j][1]
                    if other != item:
                        counts[other] = counts.get(other, 0) + 1
            # Most co-clicked first; ties by first appearance, as Counter.most_common orders them.
            top = sorted(counts, key=counts.__getitem__, reverse=True)[:k]
            tokens.append(["cc:item=" + other for other in top])
            n_users[row, 0] = math.log1p(len(users))
        return Leaked(["cc:log_users"], n_users, tokens)
