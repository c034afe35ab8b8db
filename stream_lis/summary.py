"""The final figures of a run as one JSON document (``run --summary-json``):

- ``run``: the run itself: ``records`` (records *read*, accepted or not), ``seconds``,
  ``records_per_second``, ``stopped_by``, ``source``, ``finished_unix``;
- ``arms`` / ``ended_arms``: each arm's figures (AUCs per learner, LIS per probe and AIS with
  their intervals, efficiency, CTR, labelled and truncated examples, embedding counts);
- ``counters``: ``records`` (records *accepted*: valid, on time, not a duplicate), ``invalid``
  (rejected, by reason), ``click_joins`` (by outcome), ``shed`` (examples or behaviour-log
  events dropped unevaluated at a memory bound, by bound), ``experiments_ended``;
- ``pending_impressions``, ``held_examples`` and the effective ``config``.

The arms' figures and the counters are the ones ``/metrics`` exports. NaN and infinities are
written as ``null`` (JSON has neither), so a consumer never has to special-case them.
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
            "shed": dict(c.shed),
            "experiments_ended": c.experiments_ended,
        },
        "pending_impressions": s.pending_impressions,
        "held_examples": s.held_examples,
        "config": config or {},
    })
