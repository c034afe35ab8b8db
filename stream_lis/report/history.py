"""``stream-lis run --history PATH``: one JSON line per live-table report and one at the end.

Each line is a point in time of the run, with the per-arm figures of ``--summary-json``
(``stream_lis.summary.arm_summary``) and the label-delay histogram, so ``stream-lis report``
can draw every series over time::

    {"run_id": "...", "t_wall": 1764150000.1, "watermark_ms": 1700000123000, "records": 41000,
     "arms": [<arm_summary>, ...],
     "label_delay": {"le": [1, 5, ..., "+Inf"], "counts": [<per bucket, not cumulative>], "sum": 1234.5},
     "confidence_level": 0.95}

The last line of a run also has ``"final": true`` and ``"stopped_by"``. ``watermark_ms`` is the
event-time watermark (``null`` before the first event; after the end of a finite input, when
every window is closed, the last event time). Lines are appended and flushed one at a time, so
the file can be read (and reported) while the run goes on; ``run_id`` tells runs appended to the
same file apart. Writing a line costs one ``arm_summary`` per arm: negligible at one line per
live-table interval.
"""

from __future__ import annotations

import json
import math
import time
from typing import IO, Any

from ..engine import LABEL_DELAY_BUCKETS, Snapshot
from ..paths import close_output, named, open_output
from ..summary import arm_summary

_FAR = 1 << 61  # watermarks beyond this are the clock's +-infinity sentinels


def event_time_ms(s: Snapshot) -> int | None:
    """The watermark, or the last event time once the end of input closed every window."""
    wm = s.watermark_ms
    if abs(wm) < _FAR:
        return int(wm)
    if wm > 0 and abs(s.max_event_ms) < _FAR:
        return int(s.max_event_ms)
    return None


def label_delay(s: Snapshot) -> dict[str, Any]:
    c = s.counters
    return {"le": ["+Inf" if math.isinf(b) else b for b in LABEL_DELAY_BUCKETS],
            "counts": list(c.label_delay), "sum": round(float(c.label_delay_sum), 3)}


def history_line(s: Snapshot, run_id: str, **extra: Any) -> dict[str, Any]:
    return {"run_id": run_id, "t_wall": round(time.time(), 3), "watermark_ms": event_time_ms(s),
            "records": s.counters.records, "arms": [arm_summary(a) for a in s.arms],
            "label_delay": label_delay(s), **extra}


class HistoryWriter:
    """Appends history lines to a file (``'-'``: stdout); use ``write`` as ``EmbeddedRuntime.run(on_report=...)``."""

    def __init__(self, path: str, confidence_level: float | None = None) -> None:
        self.path = path
        self.extra: dict[str, Any] = {} if confidence_level is None else {"confidence_level": confidence_level}
        self.run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 1_000_000:06d}"
        self.lines = 0
        self._fh: IO[str] | None = open_output(path, "a")

    def write(self, s: Snapshot, **extra: Any) -> None:
        if self._fh is None:
            return
        line = json.dumps(history_line(s, self.run_id, **self.extra, **extra), allow_nan=False, separators=(",", ":"))
        try:
            self._fh.write(line + "\n")
            self._fh.flush()
        except OSError as exc:  # a full disk mid-run: said with the file's name
            raise named(exc, self.path) from None
        self.lines += 1

    def close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                close_output(fh)
            except OSError as exc:  # what the failed write left in the buffer fails again
                raise named(exc, self.path) from None
