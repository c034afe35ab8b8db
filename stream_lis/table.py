"""The live per-arm table printed by ``stream-lis run``: what an operator reads first.

>>> from stream_lis.config import Config
>>> from stream_lis.engine import Engine
>>> print(render(Engine(Config()).snapshot(), records=0, rate=0.0).splitlines()[0][:43])
records 0 | 0 rec/s | watermark - | pending
"""

from __future__ import annotations

import datetime as dt
import math

from .engine import Snapshot
from .evaluator import ArmStats, Interval


def _f(x: float | None, fmt: str = ".4f") -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, fmt)


def _iv(iv: Interval | None, label: str) -> str:
    if iv is None or not math.isfinite(iv.value):
        return ""
    flag = " *" if iv.excludes_zero() else ""
    return f"{label} {iv.value:+.4f} [{_f(iv.low, '+.4f')}, {_f(iv.high, '+.4f')}]{flag}"


def _time(ms: int) -> str:
    if abs(ms) >= 1 << 61:
        return "-" if ms < 0 else "end"
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def render_arm(a: ArmStats) -> list[str]:
    lines = [
        f"{a.experiment} / {a.arm}: impressions {a.impressions:,}  labelled {a.labelled:,}  "
        f"CTR {_f(a.ctr and a.ctr * 100, '.2f')}%  production AUC {_f(a.production_auc_window)}  window {a.window_examples:,}"
        + (f"  truncated {a.truncated:,}" if a.truncated else ""),
        f"  {'learner':<22}{'AUC window':>11}{'AUC all':>9}   gain over clean (95% CI)            AIS/LIS",
    ]
    if a.truncated and not a.window_examples:
        # A finite input shorter than the horizon: every example's future was cut off.
        lines.insert(1, f"  no AUC yet: all {a.truncated:,} labelled examples lie within the horizon of the input's end "
                        "(their look-ahead was cut off, so they are learnt from but not scored); give a longer input")
    for name, st in a.learners.items():  # no mllm for an arm without embeddings (ArmEvaluator.stats)
        gain, eff = "", ""
        if name.startswith("leaky:"):
            probe = name.split(":", 1)[1]
            gain = _iv(a.lis.get(probe), "LIS")
            e = a.efficiency.get(probe)
            eff = _f(e, ".2f") if e is not None else "-"
        elif name == "mllm":
            gain = _iv(a.ais, "AIS")
        lines.append(f"  {name:<22}{_f(st.auc_window):>11}{_f(st.auc_cumulative):>9}   {gain:<36}{eff:>7}")
    if a.embedding_wrong_length or a.embedding_missing:
        # Still evaluated: without this line they would only show as a weaker AIS.
        lines.append(f"  embeddings: {a.embedding_wrong_length:,} examples with another length than the arm's "
                     f"{a.embedding_dims}, {a.embedding_missing:,} without a vector")
    return lines


def render(s: Snapshot, records: int, rate: float, progress: str = "") -> str:
    c = s.counters
    invalid = sum(c.invalid.values())
    head = (f"records {records:,} | {rate:,.0f} rec/s | watermark {_time(s.watermark_ms)} | "
            f"pending {s.pending_impressions:,} | held {s.held_examples:,} | invalid {invalid:,}"
            + (f" | {progress}" if progress else ""))
    out = [head]
    for a in s.arms:
        out.append("")
        out.extend(render_arm(a))
    if s.arms:
        out.append("")
        out.append("  * the 95% interval excludes 0; AIS/LIS shown where LIS is significantly positive")
    return "\n".join(out)
