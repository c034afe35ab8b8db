"""Process-level tuning the runtimes apply at start (``[runtime]`` in the config)."""

from __future__ import annotations

import gc


def tune_gc(threshold: int) -> None:
    """Young collections every ``threshold`` allocations, older generations rarely.

    The objects that live long (pending impressions, logs, learners) are few and large or
    not tracked at all; what the hot path allocates dies young. Python's default (700)
    starts a collection every few hundred records, and every tenth of them scans the
    long-lived state too. ``0`` leaves Python's defaults.

    >>> before = gc.get_threshold()
    >>> tune_gc(50_000); gc.get_threshold()[0]
    50000
    >>> gc.set_threshold(*before)
    """
    if threshold > 0:
        gc.set_threshold(threshold, 20, 100)
