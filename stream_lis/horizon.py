"""The look-ahead buffer: labelled examples wait here until their future window is complete.

An example from time ``t`` is released once the watermark passes ``t + R`` with
``R = max(W, H)``: by then its label is final and every on-time event of ``(t, t + H]`` has
been seen, so probes can build leaked features from that window. The clean learner waits
just as long, so the leaked features are the only difference between the learners.

>>> from stream_lis.events import Impression
>>> from stream_lis.join import LabelledExample
>>> buf = LookAheadBuffer(hold_ms=50)
>>> imp = Impression(impression_id="i", ts=10, user_id="u", item_id="a", experiment="e", arm="c")
>>> buf.push(LabelledExample(imp, 0, None, 20))
>>> buf.pop_ready(watermark=60), len(buf)
([], 1)
>>> [x.impression.impression_id for x in buf.pop_ready(watermark=61)]
['i']
"""

from __future__ import annotations

import heapq

import msgspec

from .join import LabelledExample


class LookAheadBuffer:
    """A heap of examples ordered by release time, ties broken by impression id.

    The tie-break makes the release order a function of the events alone, not of the order
    partitions happened to deliver them in.
    """

    def __init__(self, hold_ms: int) -> None:
        self.hold_ms = hold_ms
        self._heap: list[tuple[int, str, LabelledExample]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, ex: LabelledExample) -> None:
        imp = ex.impression
        heapq.heappush(self._heap, (imp.ts + self.hold_ms, imp.impression_id, ex))

    def pop_ready(self, watermark: int) -> list[LabelledExample]:
        """Every example whose hold has passed, in release order."""
        out = []
        h = self._heap
        while h and h[0][0] < watermark:
            out.append(heapq.heappop(h)[2])
        return out

    def drop_oldest(self) -> LabelledExample:
        """Remove the example due first (load shedding)."""
        return heapq.heappop(self._heap)[2]

    def oldest_ts(self) -> int | None:
        """Event time of the oldest held example (what probes must keep data for)."""
        return self._heap[0][0] - self.hold_ms if self._heap else None

    def state(self) -> list[LabelledExample]:
        return [e for _, _, e in self._heap]

    def load(self, state: list) -> None:
        self._heap = []
        for ex in state:
            ex = ex if isinstance(ex, LabelledExample) else msgspec.convert(ex, LabelledExample)
            self._heap.append((ex.impression.ts + self.hold_ms, ex.impression.impression_id, ex))
        heapq.heapify(self._heap)
