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
from zlib import crc32

import numpy as np

from ..join import LabelledExample
from .base import Leaked, Probe, TokenRows
from .log import BehaviourLog


class NextClickProbe(Probe):
    """Features: whether the user clicks again, which item, and whether it is this item."""

    name = "next_click"

    def columns(self, examples: Sequence[LabelledExample], log: BehaviourLog, horizon_ms: int) -> Leaked:
        nxt, own_item = log.clicks.next_clicked(examples, horizon_ms)
        hashes, strings = log.clicks.item_tokens(TOKEN)
        has = nxt >= 0
        same = has & (nxt == own_item)
        # A row: nc:any, nc:item=<next>, and nc:same_item when it is the example's own item.
        lens = 2 * has + same
        indptr = np.zeros(len(examples) + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        start = indptr[:-1][has]
        h = np.empty(int(indptr[-1]), dtype=np.int64)
        s = np.empty(int(indptr[-1]), dtype=object)
        h[start], s[start] = _ANY
        h[start + 1], s[start + 1] = hashes[nxt[has]], strings[nxt[has]]
        start = indptr[:-1][same] + 2
        h[start], s[start] = _SAME
        return Leaked([], None, TokenRows(indptr, h, s))


TOKEN = "nc:item="
_ANY = (crc32(b"nc:any"), "nc:any")
_SAME = (crc32(b"nc:same_item"), "nc:same_item")
