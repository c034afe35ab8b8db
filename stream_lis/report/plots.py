"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no pyplot, no GUI,
no global state), returned as PNG bytes.

A source with several points in time (history, scrape) gets time series with confidence bands;
a single point (summary, offline) gets bar charts with confidence-interval error bars. Figure ids
(stable, used by ``--save-figure``): ``lis_ais``, ``ais_efficiency``, ``auc``, ``ctr``,
``label_delay``, and ``comparison`` when several inputs are reported together.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

from .load import ArmPoint, Iv, LabelDelay, Point, Source, iter_arm_keys

WIDTH_IN, DPI = 10.0, 100  # 1000 px wide
NAN = float("nan")
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
           "#aec7e8", "#ffbb78", "#98df8a"]
ARM_PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd"]
SOURCE_PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
ARM_STYLES = ["-", "--", ":", "-."]
AIS_COLOR, CLEAN_COLOR, PROD_COLOR = "#000000", "#7f7f7f", "#bbbbbb"
FIGURE_IDS = ("lis_ais", "ais_efficiency", "auc", "ctr", "label_delay", "comparison")


@dataclass
class Fig:
    id: str
    title: str
    caption: str
    png: bytes
    width_px: int
    height_px: int


class Colors:
    """Stable colours: one per probe (and its leaky learner), black for AIS / mllm, grey for clean."""

    def __init__(self, probes: Sequence[str]) -> None:
        self.probe = {p: PALETTE[k % len(PALETTE)] for k, p in enumerate(probes)}

    def learner(self, name: str) -> str:
        if name == "clean":
            return CLEAN_COLOR
        if name == "mllm":
            return AIS_COLOR
        if name.startswith("leaky:"):
            return self.probe.get(name.split(":", 1)[1], "#999999")
        return "#999999"


def _names(points: Sequence[Point], field: str) -> list[str]:
    """Keys of ``field`` (``lis``: probes, ``auc``: learners) over all points, first seen first."""
    return list(dict.fromkeys(k for p in points for a in p.arms for k in getattr(a, field)))


def _probes(points: Sequence[Point]) -> list[str]:
    return _names(points, "lis")


def _learners(points: Sequence[Point]) -> list[str]:
    return _names(points, "auc")


def _f(x: float | None) -> float:
    return NAN if x is None else float(x)


def _new(rows: int, cols: int, height_per_row: float = 3.2, sharey: bool | str = False, extra_h: float = 0.7) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_per_row * rows + extra_h), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, sharey=sharey, squeeze=False)
    return fig, axes


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = max(1, min(n, max_cols))
    return math.ceil(n / cols), cols


def _hide_unused(axes: Any, used: int) -> None:
    flat = axes.ravel()
    for ax in flat[used:]:
        ax.set_visible(False)


_GLYPH_MISSING = re.compile(r"Glyph (\d+) \(.*\) missing from font\(s\) (.+?)\.?$")


def missing_glyphs(caught: Sequence[warnings.WarningMessage]) -> dict[str, set[str]]:
    """Of warnings caught while figures were drawn: font -> characters of names it had no
    glyph for (drawn as boxes), said once by ``report`` rather than as matplotlib's warning
    per character and figure. Any other warning is issued again."""
    out: dict[str, set[str]] = {}
    for w in caught:
        m = _GLYPH_MISSING.match(str(w.message))
        if m:
            out.setdefault(m.group(2), set()).add(chr(int(m.group(1))))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out


def _png(fig: Any) -> tuple[bytes, int, int]:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    w, h = fig.get_size_inches() * DPI
    return buf.getvalue(), int(round(w)), int(round(h))


def _finish(fig: Any, id: str, title: str, caption: str, legend: tuple[list, list] | None = None, ncol: int = 6) -> Fig:
    if legend and legend[0]:
        fig.legend(*legend, loc="outside lower center", ncol=min(ncol, len(legend[0])), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    png, w, h = _png(fig)
    return Fig(id, title, caption, png, w, h)


def _zero(ax: Any) -> None:
    ax.axhline(0.0, color="#999999", lw=0.8, zorder=0)


def _style(ax: Any) -> None:
    ax.set_axisbelow(True)
    ax.grid(True, color="#eeeeee", lw=0.6)
    ax.tick_params(labelsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _legend_from(axes: Any) -> tuple[list, list]:
    handles, labels, seen = [], [], set()
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in seen and not lab.startswith("_"):
                seen.add(lab)
                handles.append(h)
                labels.append(lab)
    return handles, labels


# -- time axis -------------------------------------------------------------------------------

class TimeAxis:
    """Event time (the watermark) when every point has one and it advanced, else wall time since the
    first point, else the points' order."""

    def __init__(self, points: Sequence[Point]) -> None:
        wms = [p.watermark_ms for p in points]
        if all(w is not None for w in wms) and wms[-1] > wms[0]:  # event time moved: plot against it
            self.x: list[Any] = [dt.datetime.fromtimestamp(p.watermark_ms / 1000, dt.timezone.utc).replace(tzinfo=None)
                                 for p in points]
            first, last = self.x[0], self.x[-1]
            span = first.strftime("%Y-%m-%d %H:%M") + " – " + last.strftime("%H:%M" if first.date() == last.date() else "%Y-%m-%d %H:%M")
            self.label, self.dates = f"event time, UTC ({span})", True
        elif all(p.t_wall is not None for p in points) and points[-1].t_wall > points[0].t_wall:
            t0 = points[0].t_wall
            self.x = [p.t_wall - t0 for p in points]
            self.label, self.dates = "wall time since the first point (s)", False
        else:
            self.x = list(range(len(points)))
            self.label, self.dates = "point", False

    def apply(self, ax: Any, bottom: bool = True) -> None:
        if self.dates:
            from matplotlib.dates import HOURLY, MINUTELY, MONTHLY, SECONDLY, AutoDateLocator, ConciseDateFormatter

            loc = AutoDateLocator(maxticks=6)
            # With at most 6 ticks the default steps leave gaps (a span of about 3 days fits
            # no hourly step, about 3 years no monthly one) and matplotlib warns and falls
            # back; one step per next unit up closes them.
            for freq, step in ((SECONDLY, 60), (MINUTELY, 60), (HOURLY, 24), (MONTHLY, 12)):
                loc.intervald[freq] = sorted({*loc.intervald[freq], step})
            fmt = ConciseDateFormatter(loc)
            fmt.offset_formats = [""] * 6  # the span is in the axis label (the offset text collides in narrow panels)
            ax.xaxis.set_major_locator(loc)
            ax.xaxis.set_major_formatter(fmt)
        if bottom:
            ax.set_xlabel(self.label, fontsize=8)


def _arm_at(p: Point, key: tuple[str, str]) -> ArmPoint | None:
    for a in p.arms:
        if a.key == key:
            return a
    return None


def _series(points: Sequence[Point], key: tuple[str, str], get: Any) -> list[float]:
    out = []
    for p in points:
        a = _arm_at(p, key)
        v = get(a) if a is not None else None
        out.append(_f(v))
    return out


def _iv_series(points: Sequence[Point], key: tuple[str, str], get: Any) -> tuple[list[float], list[float], list[float]]:
    v, lo, hi = [], [], []
    for p in points:
        a = _arm_at(p, key)
        iv: Iv | None = get(a) if a is not None else None
        v.append(_f(iv.value if iv else None))
        lo.append(_f(iv.low if iv else None))
        hi.append(_f(iv.high if iv else None))
    return v, lo, hi


def _band(ax: Any, x: list[Any], v: list[float], lo: list[float], hi: list[float], color: str, label: str,
          lw: float = 1.4, alpha: float = 0.15, ls: str = "-") -> None:
    import numpy as np

    lo_a, hi_a = np.array(lo, dtype=float), np.array(hi, dtype=float)
    ok = np.isfinite(lo_a) & np.isfinite(hi_a)
    if ok.any():
        ax.fill_between(x, lo_a, hi_a, where=ok, color=color, alpha=alpha, lw=0, interpolate=False)
    many = len(x) > 40
    ax.plot(x, v, color=color, lw=lw, ls=ls, label=label, marker=None if many else "o", ms=2.5)


# -- time series -----------------------------------------------------------------------------

def _arm_panels(pts: Sequence[Point], ylabel: str) -> tuple[Any, Any, "TimeAxis", list[tuple[tuple[str, str], Any]]]:
    """One panel per arm sharing the y axis over event time: titled, styled, labelled."""
    keys = iter_arm_keys(pts)
    ax_t = TimeAxis(pts)
    rows, cols = _grid(len(keys))
    fig, axes = _new(rows, cols, sharey=True)
    panels = list(zip(keys, axes.ravel()))
    for k, (key, ax) in enumerate(panels):
        _style(ax)
        ax.set_title(f"{key[0]} / {key[1]}", fontsize=9)
        ax_t.apply(ax, bottom=k >= len(keys) - cols)
        if k % cols == 0:
            ax.set_ylabel(ylabel, fontsize=8)
    _hide_unused(axes, len(keys))
    return fig, axes, ax_t, panels


def ts_lis_ais(src: Source, pts: Sequence[Point], colors: Colors, level: str) -> Fig:
    fig, axes, ax_t, panels = _arm_panels(pts, "AUC gain over clean")
    for key, ax in panels:
        for probe in colors.probe:
            v, lo, hi = _iv_series(pts, key, lambda a, p=probe: a.lis.get(p))
            if any(math.isfinite(x) for x in v):
                _band(ax, ax_t.x, v, lo, hi, colors.probe[probe], f"LIS {probe}")
        v, lo, hi = _iv_series(pts, key, lambda a: a.ais)
        if any(math.isfinite(x) for x in v):
            _band(ax, ax_t.x, v, lo, hi, AIS_COLOR, "AIS (mllm)", lw=2.0, alpha=0.12)
        _zero(ax)
    return _finish(fig, "lis_ais", "LIS per probe and AIS over time",
                   f"LIS[probe] = AUC(leaky:probe) − AUC(clean) and AIS = AUC(mllm) − AUC(clean) on each arm's sliding "
                   f"window; shaded: {level} confidence band (paired DeLong). LIS bounds what an MLLM aligned on that "
                   "preference data can bring; a falling line is alignment drift.", _legend_from(axes))


def ts_ais_efficiency(src: Source, pts: Sequence[Point], colors: Colors, level: str) -> Fig:
    import numpy as np

    keys = iter_arm_keys(pts)
    ax_t = TimeAxis(pts)
    rows, cols = _grid(1 + len(keys))
    fig, axes = _new(rows, cols)
    ax = axes.ravel()[0]
    for k, key in enumerate(keys):  # black like AIS everywhere; arms told apart by line style
        v, lo, hi = _iv_series(pts, key, lambda a: a.ais)
        _band(ax, ax_t.x, v, lo, hi, AIS_COLOR, f"AIS {key[0]} / {key[1]}", lw=1.6, alpha=0.08,
              ls=ARM_STYLES[k % len(ARM_STYLES)])
    _zero(ax)
    _style(ax)
    ax.set_title("AIS per arm", fontsize=9)
    ax.set_ylabel("AUC(mllm) − AUC(clean)", fontsize=8)
    ax_t.apply(ax, bottom=len(keys) < cols)
    clipped = False
    for k, key in enumerate(keys):
        ax = axes.ravel()[1 + k]
        top = 0.0
        for probe in colors.probe:
            v = _series(pts, key, lambda a, p=probe: a.efficiency.get(p))
            if any(math.isfinite(x) for x in v):
                ax.plot(ax_t.x, v, color=colors.probe[probe], lw=1.4, marker="o", ms=2.5, label=f"AIS / LIS[{probe}]")
                top = max(top, float(np.nanmax(v)))
        ax.axhline(1.0, color="#999999", lw=0.8, ls="--", zorder=0)
        _zero(ax)
        _style(ax)
        if top > 3.0:
            ax.set_ylim(top=3.0)
            clipped = True
        ax.set_title(f"efficiency AIS / LIS: {key[0]} / {key[1]}", fontsize=9)
        ax_t.apply(ax, bottom=1 + k >= 1 + len(keys) - cols)
    _hide_unused(axes, 1 + len(keys))
    cap = (f"Left: AIS per arm with its {level} band. Then, per arm, the alignment efficiency AIS / LIS[probe]: the "
           "share of the preference data's upper bound the MLLM captured, drawn only where LIS is significantly "
           "positive (gaps elsewhere); dashed line at 1.")
    if clipped:
        cap += " The y axis is cut at 3 (ratios over a barely significant LIS are large)."
    return _finish(fig, "ais_efficiency", "AIS and alignment efficiency over time", cap, _legend_from(axes))


def ts_auc(src: Source, pts: Sequence[Point], colors: Colors) -> Fig:
    fig, axes, ax_t, panels = _arm_panels(pts, "AUC (sliding window)")
    for key, ax in panels:
        for name in _learners(pts):
            v = _series(pts, key, lambda a, n=name: a.auc.get(n))
            if any(math.isfinite(x) for x in v):
                ax.plot(ax_t.x, v, color=colors.learner(name), lw=2.0 if name in ("clean", "mllm") else 1.2,
                        label=name, marker=None if len(v) > 40 else "o", ms=2)
        v = _series(pts, key, lambda a: a.production_auc)
        if any(math.isfinite(x) for x in v):
            ax.plot(ax_t.x, v, color=PROD_COLOR, lw=1.2, ls=":", label="production score")
    return _finish(fig, "auc", "AUC per learner over time",
                   "ROC AUC of every learner of the arm on the sliding window of labelled examples (prequential: each "
                   "example scored before any learner learns from it); dotted: the production score carried by the events.",
                   _legend_from(axes), ncol=5)


def ts_ctr(src: Source, pts: Sequence[Point]) -> Fig | None:
    keys = iter_arm_keys(pts)
    if not any(_arm_at(p, k) is not None and _arm_at(p, k).ctr is not None for p in pts for k in keys):
        return None
    ax_t = TimeAxis(pts)
    fig, axes = _new(1, 2)
    a1, a2 = axes[0]
    for k, key in enumerate(keys):
        c = ARM_PALETTE[k % len(ARM_PALETTE)]
        ctr = [x * 100 for x in _series(pts, key, lambda a: a.ctr)]
        a1.plot(ax_t.x, ctr, color=c, lw=1.6, label=f"{key[0]} / {key[1]}", marker=None if len(ctr) > 40 else "o", ms=2.5)
        a2.plot(ax_t.x, _series(pts, key, lambda a: a.labelled), color=c, lw=1.6)
    for ax, title, ylab in ((a1, "CTR per arm (labelled impressions, since start)", "CTR (%)"),
                            (a2, "labelled examples per arm (since start)", "examples")):
        _style(ax)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylab, fontsize=8)
        ax_t.apply(ax)
    return _finish(fig, "ctr", "CTR and volume per arm over time",
                   "Click-through rate of each arm's labelled impressions and the number labelled so far.",
                   _legend_from(axes))


# -- label delay -----------------------------------------------------------------------------

def _bucket_label(b: float, prev: float | None) -> str:
    if math.isinf(b):
        return f"> {_dur(prev)}" if prev is not None else "all"
    return f"≤ {_dur(b)}"


def _dur(s: float | None) -> str:
    if s is None:
        return "?"
    if s >= 3600 and s % 3600 == 0:
        return f"{s / 3600:g} h"
    if s >= 60 and s % 60 == 0:
        return f"{s / 60:g} min"
    return f"{s:g} s"


def label_delay_fig(src: Source, pts: Sequence[Point]) -> Fig | None:
    with_delay = [p for p in pts if p.label_delay is not None and p.label_delay.count > 0]
    if not with_delay:
        return None
    last: LabelDelay = with_delay[-1].label_delay  # type: ignore[assignment]
    over_time = len(with_delay) > 2
    fig, axes = _new(1, 2 if over_time else 1)
    ax = axes[0][0]
    total = max(last.count, 1)
    labels = [_bucket_label(b, last.bounds[k - 1] if k else None) for k, b in enumerate(last.bounds)]
    share = [100.0 * c / total for c in last.counts]
    ax.bar(range(len(share)), share, color="#4c72b0")
    ax.set_xticks(range(len(share)), labels, rotation=45, ha="right")
    nonzero = [x for x in share if x > 0]
    if nonzero and max(nonzero) > 20 * min(nonzero):  # negatives all sit at W: a log scale shows the clicks too
        ax.set_yscale("log")
        ax.set_ylabel("share of labels (%, log scale)", fontsize=8)
    else:
        ax.set_ylabel("share of labels (%)", fontsize=8)
    mean = f"; mean {last.total_s / last.count:,.0f} s" if last.total_s is not None and last.count else ""
    ax.set_title(f"label delay, {last.count:,} labels{mean}", fontsize=9)
    _style(ax)
    if over_time:
        ax2 = axes[0][1]
        ax_t = TimeAxis(with_delay)
        means, prev = [], None
        for p in with_delay:
            ld = p.label_delay
            if prev is not None and ld.total_s is not None and prev.total_s is not None and ld.count > prev.count:
                means.append((ld.total_s - prev.total_s) / (ld.count - prev.count))
            else:
                means.append(NAN)
            prev = ld
        ax2.plot(ax_t.x, means, color="#4c72b0", lw=1.4, marker=None if len(means) > 40 else "o", ms=2.5)
        ax2.set_title("mean delay of the labels finalised in each interval", fontsize=9)
        ax2.set_ylabel("seconds", fontsize=8)
        _style(ax2)
        ax_t.apply(ax2)
    return _finish(fig, "label_delay", "Label delay",
                   "Event time from impression to final label: the click time for positives, the attribution window W for "
                   "negatives (so most labels sit in the bucket holding W).")


# -- single point: bars with CI error bars ----------------------------------------------------

def _err(iv: Iv | None) -> tuple[float, float, float] | None:
    if iv is None or iv.value is None:
        return None
    lo = iv.value - iv.low if iv.low is not None else 0.0
    hi = iv.high - iv.value if iv.high is not None else 0.0
    return iv.value, max(lo, 0.0), max(hi, 0.0)


def _bar(ax: Any, x: float, iv: Iv | None, color: str, width: float = 0.7, label: str | None = None,
         annotate: bool = True) -> None:
    e = _err(iv)
    if e is None:
        return
    v, lo, hi = e
    has_ci = iv is not None and iv.low is not None and iv.high is not None
    ax.bar([x], [v], width=width, color=color, label=label, yerr=[[lo], [hi]] if has_ci else None,
           capsize=3, error_kw={"lw": 1, "ecolor": "#333333"})
    if annotate:
        star = "*" if iv is not None and iv.significant else ""
        y = (iv.high if v >= 0 and iv.high is not None else iv.low if v < 0 and iv.low is not None else v)
        ax.annotate(f"{v:+.4f}{star}", (x, y), xytext=(0, 3 if v >= 0 else -3), textcoords="offset points",
                    ha="center", va="bottom" if v >= 0 else "top", fontsize=7)


def pt_lis_ais(src: Source, p: Point, colors: Colors, level: str) -> Fig:
    keys = [a.key for a in p.arms]
    rows, cols = _grid(len(keys))
    fig, axes = _new(rows, cols, sharey=True)
    for k, a in enumerate(p.arms):
        ax = axes.ravel()[k]
        names = [pr for pr in colors.probe if pr in a.lis]
        for j, pr in enumerate(names):
            _bar(ax, j, a.lis[pr], colors.probe[pr], label=f"LIS {pr}")
        ticks = list(names)
        if a.ais is not None and a.ais.value is not None:
            _bar(ax, len(names), a.ais, AIS_COLOR, label="AIS (mllm)")
            ticks.append("AIS")
        ax.set_xticks(range(len(ticks)), ticks, rotation=30, ha="right")
        _zero(ax)
        _style(ax)
        ax.margins(y=0.15)
        ax.set_title(a.label, fontsize=9)
        if k % cols == 0:
            ax.set_ylabel("AUC gain over clean", fontsize=8)
    _hide_unused(axes, len(keys))
    what = "on the test split (after split_at)" if src.kind == "offline" else "on each arm's sliding window"
    return _finish(fig, "lis_ais", "LIS per probe and AIS",
                   f"LIS[probe] = AUC(leaky:probe) − AUC(clean) and AIS = AUC(mllm) − AUC(clean) {what}; error bars: "
                   f"{level} confidence interval; * the interval excludes 0.", _legend_from(axes))


def pt_ais_efficiency(src: Source, p: Point, colors: Colors, level: str) -> Fig:
    fig, axes = _new(1, 2)
    ax, ax2 = axes[0]
    for k, a in enumerate(p.arms):
        _bar(ax, k, a.ais, ARM_PALETTE[k % len(ARM_PALETTE)], width=0.5)
    ax.set_xticks(range(len(p.arms)), [a.label for a in p.arms], rotation=20, ha="right")
    ax.set_title(f"AIS per arm ({level} CI)", fontsize=9)
    ax.set_ylabel("AUC(mllm) − AUC(clean)", fontsize=8)
    _zero(ax)
    _style(ax)
    ax.margins(y=0.15)
    probes = [pr for pr in colors.probe if any(a.efficiency.get(pr) is not None for a in p.arms)]
    n = max(len(p.arms), 1)
    w = 0.8 / n
    for k, a in enumerate(p.arms):
        for j, pr in enumerate(probes):
            e = a.efficiency.get(pr)
            if e is not None:
                ax2.bar([j - 0.4 + w * (k + 0.5)], [e], width=w, color=ARM_PALETTE[k % len(ARM_PALETTE)],
                        label=a.label)
                ax2.annotate(f"{e:.2f}", (j - 0.4 + w * (k + 0.5), e), xytext=(0, 2), textcoords="offset points",
                             ha="center", va="bottom", fontsize=7)
    if probes:
        ax2.set_xticks(range(len(probes)), probes, rotation=20, ha="right")
        ax2.axhline(1.0, color="#999999", lw=0.8, ls="--", zorder=0)
        ax2.margins(y=0.15)
    else:
        ax2.text(0.5, 0.5, "no probe with a significantly positive LIS:\nefficiency undefined", ha="center",
                 va="center", transform=ax2.transAxes, fontsize=9, color="#666666")
        ax2.set_xticks([])
    _zero(ax2)
    _style(ax2)
    ax2.set_title("alignment efficiency AIS / LIS[probe]", fontsize=9)
    return _finish(fig, "ais_efficiency", "AIS and alignment efficiency",
                   "AIS per arm with its confidence interval; efficiency AIS / LIS[probe] per probe and arm, shown only "
                   "where LIS is significantly positive (dashed line at 1).", _legend_from(axes[:, 1:]))


def pt_auc(src: Source, p: Point, colors: Colors) -> Fig:
    learners = _learners([p])
    fig, axes = _new(1, 1, height_per_row=3.4)
    ax = axes[0][0]
    n = max(len(p.arms), 1)
    w = 0.8 / n
    vals = []
    for k, a in enumerate(p.arms):
        xs, ys = [], []
        for j, name in enumerate(learners):
            v = a.auc.get(name)
            if v is not None:
                xs.append(j - 0.4 + w * (k + 0.5))
                ys.append(v)
        vals += ys
        ax.bar(xs, ys, width=w, color=ARM_PALETTE[k % len(ARM_PALETTE)], label=a.label)
        for x, y in zip(xs, ys):
            ax.annotate(f"{y:.4f}", (x, y), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                        fontsize=6, rotation=90 if n > 2 else 0)
    ax.set_xticks(range(len(learners)), learners, rotation=20, ha="right")
    if vals:
        ax.set_ylim(max(0.0, min(vals) - 0.03), min(1.0, max(vals) + 0.025))
    ax.set_ylabel("AUC", fontsize=8)
    _style(ax)
    what = "on the test split" if src.kind == "offline" else "on the sliding window"
    return _finish(fig, "auc", "AUC per learner", f"ROC AUC of every learner {what}, per arm (the y axis is zoomed).",
                   _legend_from(axes))


def pt_ctr(src: Source, p: Point) -> Fig | None:
    arms = [a for a in p.arms if a.ctr is not None]
    if not arms:
        return None
    fig, axes = _new(1, 1, height_per_row=2.8)
    ax = axes[0][0]
    for k, a in enumerate(arms):
        ax.bar([k], [a.ctr * 100], color=ARM_PALETTE[k % len(ARM_PALETTE)], width=0.6)
        n = f" of {a.labelled:,}" if a.labelled is not None else ""
        ax.annotate(f"{a.ctr * 100:.2f}%{n}", (k, a.ctr * 100), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(arms)), [a.label for a in arms])
    ax.set_ylabel("CTR (%)", fontsize=8)
    ax.margins(y=0.15)
    _style(ax)
    return _finish(fig, "ctr", "CTR per arm", "Click-through rate of each arm's labelled impressions "
                   + ("(test split)." if src.kind == "offline" else "(since start)."))


# -- several inputs --------------------------------------------------------------------------

def comparison_fig(sources: Sequence[Source], names: Sequence[str]) -> Fig | None:
    if len(sources) < 2:
        return None
    keys = iter_arm_keys(s.final for s in sources)
    probes = _probes([s.final for s in sources])
    if not keys:
        return None
    rows, cols = _grid(len(keys), max_cols=2)
    fig, axes = _new(rows, cols, sharey=True)
    n = len(sources)
    w = 0.8 / n
    for k, key in enumerate(keys):
        ax = axes.ravel()[k]
        ticks = probes + ["AIS"]
        for s_i, (src, name) in enumerate(zip(sources, names)):
            a = _arm_at(src.final, key)
            if a is None:
                continue
            color = SOURCE_PALETTE[s_i % len(SOURCE_PALETTE)]
            for j, t in enumerate(ticks):
                iv = a.ais if t == "AIS" else a.lis.get(t)
                _bar(ax, j - 0.4 + w * (s_i + 0.5), iv, color, width=w, label=name, annotate=False)
        ax.set_xticks(range(len(ticks)), ticks, rotation=30, ha="right")
        _zero(ax)
        _style(ax)
        ax.set_title(f"{key[0]} / {key[1]}", fontsize=9)
        if k % cols == 0:
            ax.set_ylabel("AUC gain over clean", fontsize=8)
    _hide_unused(axes, len(keys))
    return _finish(fig, "comparison", "Final LIS and AIS by input",
                   "The last point of every input side by side, with confidence intervals: e.g. the streaming values "
                   "(end of a run) next to the offline ones computed the paper's way on the same events.",
                   _legend_from(axes), ncol=3)


def figures(src: Source, level: str) -> list[Fig]:
    """Every figure of one input, in report order."""
    pts = [p for p in src.points if p.arms]
    colors = Colors(_probes(pts))
    out: list[Fig | None]
    if not pts:
        return []
    if len(pts) > 1:
        out = [ts_lis_ais(src, pts, colors, level), ts_ais_efficiency(src, pts, colors, level), ts_auc(src, pts, colors),
               ts_ctr(src, pts), label_delay_fig(src, src.points)]
    else:
        p = pts[0]
        out = [pt_lis_ais(src, p, colors, level), pt_ais_efficiency(src, p, colors, level), pt_auc(src, p, colors),
               pt_ctr(src, p), label_delay_fig(src, src.points)]
    return [f for f in out if f is not None]
