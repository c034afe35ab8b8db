"""``next_click``: the item the same user clicks next within the horizon (the paper's example).

>>> from stream_lis.events import Impression
>>> from stream_lis.join import LabelledExample
>>> from stream_lis.probes.log import BehaviourLog
>>> log = BehaviourLog()
>>> log.add_click("u", "a", 60, "self"); log.add_click("u", "b", 70, "other")
>>> imp = Impression(impression_id="self", ts=50, user_id="u", item_id="a", experiment="e", arm="c")
>>> sorted(NextClickProbe().leaked([LabelledExample(imp, 1, 60, 60)], log, 1000)[0])
['nc:any', 'nc:item=b']
"""

from __future__ import annotations

from typing import Sequence

from ..join import LabelledExample
from .base import Leaked, Probe
from .log import BehaviourLog


class NextClickProbe(Probe):
    """Features: whether the user clicks again, which item, and whether it is this item."""

    name = "next_click"

    def columns(self, examples: Sequence[LabelledExample], log: BehaviourLog, horizon_ms: int) -> Leaked:
        tokens: list[list[str]] = []
        for ex in examples:
            imp = ex.impression
            toks: list[str] = []
            for _, item, iid in log.user_clicks(imp.user_id, imp.ts, imp.ts + horizon_ms):
                if iid == imp.impression_id:
                    continue  # its own click is the label
                toks = ["nc:any", "nc:item=" + item, "nc:same_item"] if item == imp.item_id else ["nc:any", "nc:item=" + item]
                break
            tokens.append(toks)
        return Leaked([], None, tokens)
