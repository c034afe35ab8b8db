"""A log filter that says a repeated message once per interval, with how often it came.

The Kafka client logs every failed connection attempt, at every backoff: a wrong bootstrap
address prints a dozen identical errors before the worker's own one-line reason, and a
broker outage fills the log at a few lines a second. The first of a kind is what an
operator needs; the repeats are a count.

>>> import logging
>>> now = [0.0]
>>> f = RepeatFilter(interval_s=60, prefix="kafka", clock=lambda: now[0])
>>> rec = lambda: logging.LogRecord("kafka.net", logging.ERROR, "", 0, "Connection failed: %s", ("refused",), None)
>>> [f.filter(rec()) for _ in range(3)]
[True, False, False]
>>> now[0] = 61.0
>>> r = rec(); f.filter(r), r.getMessage()
(True, 'Connection failed: refused (2 more like it in the last 61 s, not shown)')
>>> f.filter(logging.LogRecord("stream_lis.worker", logging.ERROR, "", 0, "x", (), None))
True
"""

from __future__ import annotations

import logging
import time
from typing import Callable

#: Distinct messages remembered; past it the oldest are forgotten (their next repeat shows).
_MAX_KINDS = 1024


class RepeatFilter(logging.Filter):
    """Drops a record equal (logger, level, message) to one shown less than ``interval_s``
    ago; the next one shown after that says how many were dropped. Only records of loggers
    under ``prefix`` are limited. Attach it to handlers: a logger's own filters do not see
    its children's records."""

    def __init__(self, interval_s: float = 60.0, prefix: str = "kafka",
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s, self.prefix, self.clock = interval_s, prefix, clock
        #: (logger, level, message) -> (when last shown, repeats dropped since)
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        msg = record.getMessage()
        key = (record.name, record.levelno, msg)
        now = self.clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.interval_s:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.msg, record.args = f"{msg} ({last[1]} more like it in the last {now - last[0]:.0f} s, not shown)", None
        self._seen.pop(key, None)
        if len(self._seen) >= _MAX_KINDS:
            self._seen.pop(next(iter(self._seen)))
        self._seen[key] = (now, 0)
        return True


def limit_repeats(prefix: str = "kafka", interval_s: float = 60.0) -> RepeatFilter:
    """Put one ``RepeatFilter`` on every handler of the root logger (after ``basicConfig``)."""
    f = RepeatFilter(interval_s, prefix)
    for h in logging.getLogger().handlers:
        h.addFilter(f)
    return f
