"""The live per-arm table printed by ``stream-lis run``: what an operator reads first.

"records read" counts every input record; it is "accepted" (the ``records`` counter, valid,
on time, not a duplicate) plus "invalid" (rejected, with a reason).

>>> from stream_lis.config import Config
>>> from stream_lis.engine import Engine
>>> print(render(Engine(Config()).snapshot(), records=0, rate=0.0).splitlines()[0][:63])
records read 0 | accepted 0 | invalid 0 | 0 rec/s | watermark -
>>> level_text(0.95), level_text(0.6), level_text(0.995), level_text(None)
('95% ', '60% ', '99.5% ', '')
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Mapping, Sequence

from .engine import Counters, Snapshot
from .evaluator import ArmStats, Interval

#: The ``limits.*`` bound behind each ``Counters.shed`` key: what to raise when it sheds.
SHED_LIMITS = {"lookahead": "limits.max_held_examples", "behaviour_log": "limits.max_log_events"}


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


def level_text(level: float | None) -> str:
    """A confidence level as the table prints it before "CI" or "interval" (0.95: ``"95% "``;
    None, not known: nothing)."""
    return "" if level is None else f"{level * 100:.4g}% "


def _one_class(a: ArmStats) -> str | None:
    """Why the arm can have no AUC at all: its labelled examples are of one class."""
    if not a.labelled or (a.labelled_positive and a.labelled_negative):
        return None
    if not a.labelled_positive:
        return (f"no AUC: all {a.labelled:,} labelled examples are negative (no click was attributed); "
                "an AUC needs both clicked and unclicked impressions")
    return (f"no AUC: all {a.labelled:,} labelled examples are positive (every impression was clicked); "
            "an AUC needs both clicked and unclicked impressions")


def _shed_text(shed: Mapping[str, int]) -> str:
    return ", ".join(f"{n:,} at {SHED_LIMITS.get(b, b)}" for b, n in sorted(shed.items()) if n)


#: Event times below this (1973-03-03 in epoch milliseconds) are most likely epoch seconds.
SECONDS_LIKE_MS = 10 ** 11


def render_arm(a: ArmStats, level: float | None = None, shed: Mapping[str, int] | None = None,
               last_event_ms: int | None = None) -> list[str]:
    """One arm's block. ``level``: the intervals' confidence level (None: not said); ``shed``:
    examples dropped at memory bounds (all arms), which explain an arm with few or no scored
    examples better than a short input does; ``last_event_ms``: the input's largest event
    time, which tells times written in seconds (a span of hours read as seconds) from a
    short input."""
    lines = [
        f"{a.experiment} / {a.arm}: impressions {a.impressions:,}  labelled {a.labelled:,}  "
        f"CTR {_f(a.ctr and a.ctr * 100, '.2f')}%  production AUC {_f(a.production_auc_window)}  window {a.window_examples:,}"
        + (f"  truncated {a.truncated:,}" if a.truncated else ""),
    ]
    one_class = _one_class(a)
    if one_class is not None:  # a column of dashes would not say why
        return [*lines, f"  {one_class}"]
    lines.append(f"  {'learner':<22}{'AUC window':>11}{'AUC all':>9}   {'gain over clean (' + level_text(level) + 'CI)':<36}AIS/LIS")
    if a.truncated and not a.window_examples:
        dropped = _shed_text(shed or {})
        if dropped:
            # Memory bounds, not the input's length, left nothing to score.
            why = (f"  no AUC yet: the {a.truncated:,} labelled examples kept lie within the horizon of the input's "
                   f"end, and examples were dropped at memory bounds ({dropped}); raise the limit")
        else:
            # A finite input shorter than the horizon: every example's future was cut off.
            why = (f"  no AUC yet: all {a.truncated:,} labelled examples lie within the horizon of the input's end "
                   "(their look-ahead was cut off, so they are learnt from but not scored); give a longer input")
            if last_event_ms is not None and 0 <= last_event_ms < SECONDS_LIKE_MS:
                why += (f", or check the events' ts: the last is {last_event_ms:,}, before 1973 in epoch milliseconds "
                        "(were they written in seconds?)")
        lines.insert(1, why)
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
    if not a.has_embeddings and a.labelled:
        # The mllm row is left out; without a word an arm's missing AIS looks like a fault.
        lines.append("  no AIS: none of its examples had an MLLM embedding (inline, or in the embeddings table: "
                     "embeddings.path, or embeddings.from_topic on Kafka)")
    return lines


def _reasons(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {n:,}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n)


def why_no_arm(c: Counters, read: int) -> str | None:
    """Why records were read but no arm exists to evaluate (None: nothing to explain)."""
    rejected = sum(c.invalid.values())
    clicks = sum(c.clicks.values())
    if read == 0:
        return None
    if c.records == 0:
        return f"every one of the {read:,} records read was rejected ({_reasons(c.invalid)})"
    if clicks < c.records:
        return None  # impressions accepted, their arm not created yet (the live table, early)
    outcomes = _reasons(c.clicks)
    if set(k for k, n in c.clicks.items() if n) == {"orphan"}:
        outcomes = "all orphans: their impressions are not in the input"
    return (f"no impression accepted: {clicks:,} clicks ({outcomes})"
            + (f", {rejected:,} records rejected ({_reasons(c.invalid)})" if rejected else ""))


def render(s: Snapshot, records: int, rate: float, progress: str = "", level: float | None = None,
           ended: Sequence[ArmStats] = ()) -> str:
    """The table; ``records``: records read (accepted + invalid); ``level``: the intervals'
    confidence level (``evaluation.confidence_level``; None: not said); ``ended``: arms of
    experiments that ended during the run (idle past ``time.experiment_idle_timeout``), shown
    with their final figures after the live ones."""
    c = s.counters
    invalid = sum(c.invalid.values())
    head = (f"records read {records:,} | accepted {c.records:,} | invalid {invalid:,} | {rate:,.0f} rec/s | "
            f"watermark {_time(s.watermark_ms)} | pending {s.pending_impressions:,} | held {s.held_examples:,}"
            + (f" | {progress}" if progress else ""))
    out = [head]
    dropped = _shed_text(c.shed)
    if dropped:
        out.append(f"shed (dropped at a memory bound): {dropped}")
    for a in s.arms:
        out.append("")
        out.extend(render_arm(a, level, c.shed, s.max_event_ms))
    for exp in dict.fromkeys(a.experiment for a in ended):
        out += ["", f"experiment {exp} ended (no impression for time.experiment_idle_timeout); its final figures:"]
        for a in ended:
            if a.experiment == exp:
                out.append("")
                out.extend(render_arm(a, level, c.shed, s.max_event_ms))
    if s.arms or ended:
        out.append("")
        out.append(f"  * the {level_text(level)}interval excludes 0; AIS/LIS shown where LIS is significantly positive")
    elif not s.pending_impressions:
        why = why_no_arm(c, records)
        if why is not None:
            out += ["", f"nothing to evaluate: {why}"]
    return "\n".join(out)
