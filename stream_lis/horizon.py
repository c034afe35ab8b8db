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
from collections import deque

import msgspec

from .join import LabelledExample
from .packing import pack


class LookAheadBuffer:
    """Examples ordered by release time, ties broken by impression id.

    The tie-break makes the release order a function of the events alone, not of the order
    partitions happened to deliver them in.

    Two containers hold them: a run of examples pushed in release order (a deque: O(1) in and
    out) and a heap for the rest. One join stage feeding the buffer finalises labels in
    deadline order, so in the embedded runtime every push extends the run and no heap
    operation is paid; merged partitions (the Kafka evaluation stage) interleave their runs,
    and the examples that arrive behind the run's end go to the heap. Releases merge the two.

    >>> from stream_lis.events import Impression
    >>> from stream_lis.join import LabelledExample
    >>> buf = LookAheadBuffer(hold_ms=0)
    >>> for ts, iid in [(10, "b"), (30, "c"), (20, "a"), (10, "a"), (5, "z")]:
    ...     buf.push(LabelledExample(Impression(impression_id=iid, ts=ts, user_id="u", item_id="x",
    ...                                         experiment="e", arm="c"), 0, None, ts))
    >>> buf.oldest_ts(), len(buf._run), len(buf._heap)  # the last three came behind the run's end
    (5, 2, 3)
    >>> [(x.impression.ts, x.impression.impression_id) for x in buf.pop_ready(watermark=100)]
    [(5, 'z'), (10, 'a'), (10, 'b'), (20, 'a'), (30, 'c')]
    """

    def __init__(self, hold_ms: int) -> None:
        self.hold_ms = hold_ms
        self._run: deque[tuple[int, str, LabelledExample]] = deque()
        self._heap: list[tuple[int, str, LabelledExample]] = []

    def __len__(self) -> int:
        return len(self._run) + len(self._heap)

    def push(self, ex: LabelledExample) -> None:
        imp = ex.impression
        due, iid = imp.ts + self.hold_ms, imp.impression_id
        run = self._run
        if run:
            last = run[-1]
            if due > last[0] or (due == last[0] and iid > last[1]):
                run.append((due, iid, ex))
            else:
                heapq.heappush(self._heap, (due, iid, ex))
        else:
            run.append((due, iid, ex))

    def _pop_first(self) -> tuple[int, str, LabelledExample]:
        """The entry due first of both containers (at least one is not empty)."""
        run, h = self._run, self._heap
        if h and (not run or h[0][:2] < run[0][:2]):
            return heapq.heappop(h)
        return run.popleft()

    def pop_ready(self, watermark: int) -> list[LabelledExample]:
        """Every example whose hold has passed, in release order."""
        run, h = self._run, self._heap
        if not h:
            out = []
            while run and run[0][0] < watermark:
                out.append(run.popleft()[2])
            return out
        out = []
        while (run and run[0][0] < watermark) or (h and h[0][0] < watermark):
            out.append(self._pop_first()[2])
        return out

    def drop_oldest(self) -> LabelledExample:
        """Remove the example due first (load shedding)."""
        return self._pop_first()[2]

    def oldest_ts(self) -> int | None:
        """Event time of the oldest held example (what probes must keep data for)."""
        heads = [c[0][0] for c in (self._run, self._heap) if c]
        return min(heads) - self.hold_ms if heads else None

    def frozen(self) -> list[LabelledExample]:
        """The held examples, in ``state``'s order: a list of references, cheap to take while
        the stage holds still (the examples themselves never change); ``pack`` it later."""
        return [e for _, _, e in self._run] + [e for _, _, e in self._heap]

    def state(self) -> bytes:
        """The held examples for a checkpoint, as msgpack: a pickle of up to
        ``limits.max_held_examples`` structs took eight times as long."""
        return pack(self.frozen())

    def load(self, state: bytes | list) -> None:
        """Restore from ``state()``, or from the list of examples older checkpoints hold."""
        examples = _DECODER.decode(state) if isinstance(state, (bytes, bytearray, memoryview)) else state
        entries = []
        for ex in examples:
            ex = ex if isinstance(ex, LabelledExample) else msgspec.convert(ex, LabelledExample)
            entries.append((ex.impression.ts + self.hold_ms, ex.impression.impression_id, ex))
        entries.sort(key=lambda e: e[:2])
        self._run, self._heap = deque(entries), []


_DECODER = msgspec.msgpack.Decoder(list[LabelledExample])
