"""The final figures as JSON: the same numbers ``/metrics`` exports, in one document.

NaN and infinities are written as ``null`` (JSON has neither), so a consumer never has to
special-case them.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from .engine import Snapshot
from .evaluator import ArmStats


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def arm_summary(a: ArmStats) -> dict[str, Any]:
    d = asdict(a)
    d["ctr"] = a.ctr
    d["labelled"] = {"positive": a.labelled_positive, "negative": a.labelled_negative, "total": a.labelled}
    del d["labelled_positive"], d["labelled_negative"], d["extra"]
    return _clean(d)


def summarize(s: Snapshot, ended: list[ArmStats] | None = None, run: dict[str, Any] | None = None,
              config: dict[str, Any] | None = None) -> dict[str, Any]:
    c = s.counters
    return _clean({
        "run": run or {},
        "arms": [arm_summary(a) for a in s.arms],
        "ended_arms": [arm_summary(a) for a in (ended or [])],
        "counters": {
            "records": c.records,
            "invalid": dict(c.invalid),
            "click_joins": dict(c.clicks),
            "experiments_ended": c.experiments_ended,
        },
        "pending_impressions": s.pending_impressions,
        "held_examples": s.held_examples,
        "config": config or {},
    })
