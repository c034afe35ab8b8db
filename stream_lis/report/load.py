"""Inputs of ``stream-lis report``, each read into one shape: a ``Source`` of ``Point``s.

Four kinds of input, told apart by their content (not their file name):

``history``
    JSON Lines from ``stream-lis run --history`` (see ``stream_lis.report.history``): one point
    per line. A file with several runs appended (different ``run_id``) is reported for its last run.
``summary``
    the JSON document of ``stream-lis run --summary-json``: one point, the end of the run
    (recognised by its ``"run"`` or ``"counters"`` key next to ``"arms"``).
``offline``
    the JSON of ``stream-lis offline --json``: one point (recognised by ``"mode": "offline"`` or a
    ``"split_at"`` key). Expected shape, read tolerantly::

        {"mode": "offline", "split_at": ..., "arms": [
            {"experiment": "e", "arm": "a",
             "learners": {"clean": {"auc": 0.70}, "leaky:future_item": {"auc": 0.74}, "mllm": {"auc": 0.71}},
             "lis": {"future_item": {"value": 0.04, "low": 0.03, "high": 0.05}},
             "ais": {"value": 0.01, "low": 0.0, "high": 0.02} | null,
             "efficiency": {"future_item": 0.25 | null},
             "n_train": 1000, "n_test": 500}]}

    Tolerated variations: the AUCs as ``"auc": {learner: x}``, a learner's AUC as a bare number or
    under ``auc``/``auc_test``/``value``; an interval as a bare number (no CI) or with
    ``lower``/``upper`` or ``ci: [low, high]``; the split as ``"split": {"at", "at_ms", "spec"}`` or
    per arm; ``ctr_test``, ``production_auc_test``, ``n_test_positive``; arms with ``"skipped"``
    (listed as notes); arms nested as ``{"experiments": [{"experiment": e, "arms": [...]}]}`` or
    listed under ``results``; LIS missing but the AUCs present (LIS and AIS are then the AUC
    differences, without CI). Other keys are ignored.
``scrape``
    ``/metrics`` of a running service (embedded runtime or Kafka worker), fetched N times S seconds
    apart: one point per scrape (``scrape_metrics``).

A ``Point`` holds per-arm figures (``ArmPoint``) and, where the input has them, the label-delay
histogram. NaN and missing numbers are ``None`` throughout.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TextIO

__all__ = ["ArmPoint", "Iv", "LabelDelay", "Point", "ReportError", "ScrapeFailed", "Source", "load_file", "scrape_metrics",
           "parse_metrics", "point_to_history"]


class ReportError(Exception):
    """An input that cannot be reported (missing, unreadable, or of no known shape)."""


class ScrapeFailed(ReportError):
    """No scrape of a well-formed URL gave a sample (nothing listening, interrupted first): the
    service's or the network's state, not a mistake in the arguments."""


@dataclass
class Iv:
    """A value with its confidence interval (bounds ``None`` when the input has none)."""

    value: float | None
    low: float | None = None
    high: float | None = None

    @property
    def significant(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


@dataclass
class ArmPoint:
    experiment: str
    arm: str
    lis: dict[str, Iv] = field(default_factory=dict)
    ais: Iv | None = None
    efficiency: dict[str, float | None] = field(default_factory=dict)
    auc: dict[str, float | None] = field(default_factory=dict)  # window AUC (streaming), test-split AUC (offline)
    auc_cumulative: dict[str, float | None] = field(default_factory=dict)
    production_auc: float | None = None
    ctr: float | None = None
    labelled: int | None = None
    impressions: int | None = None
    window_examples: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # n_train, n_test, ... shown as text

    @property
    def key(self) -> tuple[str, str]:
        return self.experiment, self.arm

    @property
    def label(self) -> str:
        return f"{self.experiment} / {self.arm}"


@dataclass
class LabelDelay:
    bounds: list[float]  # upper bounds in seconds, the last +inf
    counts: list[int]  # labels per bucket (not cumulative)
    total_s: float | None = None  # sum of the delays

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass
class Point:
    arms: list[ArmPoint]
    t_wall: float | None = None
    watermark_ms: float | None = None
    records: int | None = None
    label_delay: LabelDelay | None = None


@dataclass
class Source:
    kind: str  # history | summary | offline | scrape
    name: str  # the path or URL
    points: list[Point]
    info: list[tuple[str, str]] = field(default_factory=list)  # shown in the section header
    notes: list[str] = field(default_factory=list)
    confidence: float | None = None  # interval level, when the input says

    @property
    def final(self) -> Point:
        return self.points[-1]

    @property
    def is_series(self) -> bool:
        return len([p for p in self.points if p.arms]) > 1


# -- small tolerant readers ------------------------------------------------------------------

def _num(x: Any) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, (int, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, str):
        try:
            v = float(x)
        except ValueError:
            return None
        return v if math.isfinite(v) else None
    return None


def _int(x: Any) -> int | None:
    v = _num(x)
    return int(v) if v is not None else None


def _iv(x: Any) -> Iv | None:
    """An interval from a dict (value/low/high and common variants) or a bare number."""
    if x is None:
        return None
    if isinstance(x, dict):
        value = _num(_first(x, "value", "estimate", "mean", "lis", "ais"))
        low = _num(_first(x, "low", "lower", "ci_lower", "lo"))
        high = _num(_first(x, "high", "upper", "ci_upper", "hi"))
        ci = x.get("ci")
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            low, high = (low if low is not None else _num(ci[0])), (high if high is not None else _num(ci[1]))
        if value is None and low is None and high is None:
            return None
        return Iv(value, low, high)
    v = _num(x)
    return Iv(v) if v is not None else None


def _first(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def _bound(x: Any) -> float:
    if x is None or (isinstance(x, str) and x.strip().lower() in ("+inf", "inf", "infinity")):
        return math.inf
    v = _num(x)
    return math.inf if v is None else v


def _label_delay(d: Any) -> LabelDelay | None:
    if not isinstance(d, dict):
        return None
    le, counts = d.get("le") or d.get("bounds"), d.get("counts")
    if not isinstance(le, list) or not isinstance(counts, list) or len(le) != len(counts) or not le:
        return None
    return LabelDelay([_bound(b) for b in le], [int(_num(c) or 0) for c in counts], _num(d.get("sum")))


# -- streaming arm summaries (history lines, --summary-json) ---------------------------------

def arm_from_summary(d: dict[str, Any]) -> ArmPoint:
    """An ``ArmPoint`` from ``stream_lis.summary.arm_summary``'s dict."""
    learners = d.get("learners") or {}
    hide_mllm = d.get("has_embeddings") is False
    auc, cum = {}, {}
    for name, st in learners.items():
        if name == "mllm" and hide_mllm:
            continue
        st = st if isinstance(st, dict) else {"auc_window": st}
        auc[name] = _num(_first(st, "auc_window", "auc"))
        cum[name] = _num(st.get("auc_cumulative"))
    lis = {p: iv for p, raw in (d.get("lis") or {}).items() if (iv := _iv(raw)) is not None}
    lab = d.get("labelled")
    labelled = _int(lab.get("total")) if isinstance(lab, dict) else _int(lab)
    return ArmPoint(
        experiment=str(d.get("experiment", "?")), arm=str(d.get("arm", "?")),
        lis=lis, ais=None if hide_mllm else _iv(d.get("ais")),
        efficiency={p: _num(v) for p, v in (d.get("efficiency") or {}).items()},
        auc=auc, auc_cumulative=cum,
        production_auc=_num(d.get("production_auc_window")), ctr=_num(d.get("ctr")),
        labelled=labelled, impressions=_int(d.get("impressions")), window_examples=_int(d.get("window_examples")),
    )


def _history_point(d: dict[str, Any]) -> Point:
    return Point(arms=[arm_from_summary(a) for a in d.get("arms") or [] if isinstance(a, dict)],
                 t_wall=_num(d.get("t_wall")), watermark_ms=_num(d.get("watermark_ms")),
                 records=_int(d.get("records")), label_delay=_label_delay(d.get("label_delay")))


def _from_history(name: str, lines: list[dict[str, Any]], skipped: int) -> Source:
    runs: dict[Any, list[dict[str, Any]]] = {}
    for d in lines:
        runs.setdefault(d.get("run_id"), []).append(d)
    run_id, chosen = list(runs.items())[-1]
    pts = [_history_point(d) for d in chosen]
    pts = [p for p in pts if p.arms] or pts[-1:]
    last = chosen[-1]
    src = Source("history", name, pts, confidence=_num(last.get("confidence_level")))
    src.info.append(("input", f"history (stream-lis run --history): {name}"))
    src.info.append(("points", f"{len(pts)}" + ("" if last.get("final") else " (no final line: the run was still going or was interrupted)")))
    if run_id is not None:
        src.info.append(("run", str(run_id) + (f" (the last of {len(runs)} runs in the file)" if len(runs) > 1 else "")))
    if pts[0].t_wall is not None and pts[-1].t_wall is not None:
        src.info.append(("wall time", f"{_utc(pts[0].t_wall)} to {_utc(pts[-1].t_wall)} UTC ({pts[-1].t_wall - pts[0].t_wall:,.1f} s)"))
    _event_span(src)
    if pts[-1].records is not None:
        src.info.append(("records", f"{pts[-1].records:,}"))
    if last.get("stopped_by"):
        src.info.append(("stopped by", str(last["stopped_by"])))
    if skipped:
        src.notes.append(f"{skipped} unreadable line(s) skipped (a run still writing its last line?)")
    return src


def _from_summary(name: str, doc: dict[str, Any]) -> Source:
    run = doc.get("run") or {}
    cfg = doc.get("config") or {}
    arms = [arm_from_summary(a) for a in doc.get("arms") or [] if isinstance(a, dict)]
    ended = [arm_from_summary(a) for a in doc.get("ended_arms") or [] if isinstance(a, dict)]
    counters = doc.get("counters") or {}
    pt = Point(arms=arms + ended, t_wall=_num(run.get("finished_unix")), records=_int(run.get("records", counters.get("records"))),
               label_delay=_label_delay(doc.get("label_delay") or counters.get("label_delay")))
    src = Source("summary", name, [pt], confidence=_num((cfg.get("evaluation") or {}).get("confidence_level")))
    src.info.append(("input", f"final figures (stream-lis run --summary-json): {name}"))
    if run:
        bits = [f"{_int(run.get('records')) or 0:,} records"]
        if run.get("seconds") is not None:
            bits.append(f"{_num(run.get('seconds')) or 0:,.1f} s")
        if run.get("source"):
            bits.append(f"source {run['source']}")
        if run.get("stopped_by"):
            bits.append(f"stopped by {run['stopped_by']}")
        src.info.append(("run", ", ".join(bits)))
        if run.get("finished_unix") is not None:
            src.info.append(("finished", f"{_utc(_num(run['finished_unix']) or 0)} UTC"))
    if ended:
        src.info.append(("ended experiments", ", ".join(sorted({a.experiment for a in ended}))))
    _config_info(src, cfg)
    if pt.label_delay is None:
        src.notes.append("a --summary-json has no label-delay histogram: report a --history file or --scrape for it")
    return src


def _config_info(src: Source, cfg: dict[str, Any], window: bool = True) -> None:
    t, ev = cfg.get("time") or {}, cfg.get("evaluation") or {}
    bits = []
    for key, label in (("attribution_window", "W"), ("horizon", "H")):
        if key in t:
            bits.append(f"{label} = {_duration(t[key])}")
    if window and "window_size" in ev:
        bits.append(f"window {int(ev['window_size']):,} examples")
    if bits:
        src.info.append(("config", ", ".join(bits)))


def _duration(x: Any) -> str:
    v = _num(x) if not isinstance(x, str) else None
    return str(x) if v is None else f"{v:g} s"


# -- offline ---------------------------------------------------------------------------------

def _offline_arms(doc: dict[str, Any]) -> list[tuple[dict[str, Any], str | None]]:
    out: list[tuple[dict[str, Any], str | None]] = []
    for key in ("arms", "results"):
        v = doc.get(key)
        if isinstance(v, list):
            out += [(a, None) for a in v if isinstance(a, dict)]
        elif isinstance(v, dict):  # {"exp/arm": {...}} or {"arm": {...}}
            for k, a in v.items():
                if isinstance(a, dict):
                    exp, _, arm = str(k).rpartition("/")
                    out.append(({"experiment": exp or None, "arm": arm, **{kk: vv for kk, vv in a.items() if vv is not None}}, None))
    exps = doc.get("experiments")
    if isinstance(exps, list):
        for e in exps:
            if isinstance(e, dict):
                for a in e.get("arms") or []:
                    if isinstance(a, dict):
                        out.append((a, str(e.get("experiment", e.get("name", "?")))))
    elif isinstance(exps, dict):
        for ename, e in exps.items():
            arms = e.get("arms") if isinstance(e, dict) else None
            if isinstance(arms, list):
                out += [(a, str(ename)) for a in arms if isinstance(a, dict)]
            elif isinstance(arms, dict):
                out += [({"arm": k, **a}, str(ename)) for k, a in arms.items() if isinstance(a, dict)]
    return out


def arm_from_offline(d: dict[str, Any], experiment: str | None = None) -> ArmPoint:
    auc: dict[str, float | None] = {}
    for name, st in (d.get("learners") or d.get("auc") or {}).items():
        auc[name] = _num(_first(st, "auc", "auc_test", "value", "auc_window")) if isinstance(st, dict) else _num(st)
    lis = {p: iv for p, raw in (d.get("lis") or {}).items() if (iv := _iv(raw)) is not None}
    clean = auc.get("clean")
    if not lis and clean is not None:  # derive from the AUCs (no interval)
        lis = {n.split(":", 1)[1]: Iv(a - clean) for n, a in auc.items() if n.startswith("leaky:") and a is not None}
    ais = _iv(d.get("ais"))
    if ais is None and clean is not None and auc.get("mllm") is not None:
        ais = Iv(auc["mllm"] - clean)
    eff: dict[str, float | None] = {}
    for p, v in (d.get("efficiency") or {}).items():
        eff[p] = _iv(v).value if isinstance(v, dict) and _iv(v) is not None else _num(v)
    if not eff and ais is not None and ais.value is not None:
        eff = {p: (ais.value / iv.value if iv.significant and iv.value else None) for p, iv in lis.items()}
    extra = {label: v for k, label in (("n_train", "train examples"), ("n_test_positive", "test positives"))
             if (v := _int(d.get(k))) is not None}
    n_test = _int(d.get("n_test"))
    return ArmPoint(experiment=str(d.get("experiment") or experiment or "?"), arm=str(d.get("arm", "?")),
                    lis=lis, ais=ais, efficiency=eff, auc=auc, ctr=_num(_first(d, "ctr", "ctr_test")),
                    labelled=n_test, production_auc=_num(_first(d, "production_auc", "production_auc_test")), extra=extra)


def _from_offline(name: str, doc: dict[str, Any]) -> Source:
    raw = _offline_arms(doc)
    skipped = [(a, exp) for a, exp in raw if a.get("skipped")]
    arms = [arm_from_offline(a, exp) for a, exp in raw if not a.get("skipped")]
    if not arms:
        raise ReportError(f"{name}: an offline result (split_at / mode) with no arms"
                          + (f" ({len(skipped)} skipped)" if skipped else ""))
    src = Source("offline", name, [Point(arms=arms)], confidence=_num(doc.get("confidence_level")))
    src.info.append(("input", f"offline LIS (stream-lis offline --json): {name}"))
    split = doc.get("split") if isinstance(doc.get("split"), dict) else {}
    sa = _first(split, "at", "at_ms") if split else None
    if sa is None:
        sa = doc.get("split_at")
    if sa is None:
        sa = _first(raw[0][0], "split_at", "split_at_ms")
    if sa is not None:
        v = _num(sa)
        src.info.append(("split at", f"{sa}" + (f" ({_utc(v / 1000 if v > 1e11 else v)} UTC)" if v is not None else "")
                         + (f", --split-at {split['spec']}" if split.get("spec") else "")))
    for key in ("source", "input", "file", "records", "passes", "seed", "seconds"):
        if doc.get(key) is not None and not isinstance(doc[key], (dict, list)):
            v = doc[key]
            src.info.append((key, f"{v:,}" if isinstance(v, int) else str(v)))
    if isinstance(doc.get("config"), dict):
        _config_info(src, doc["config"], window=False)  # offline AUCs are on the whole test split
    for a, exp in skipped:
        src.notes.append(f"{a.get('experiment') or exp} / {a.get('arm')}: skipped by the offline run ({a['skipped']})")
    return src


def _fmt_int(x: Any) -> str:
    v = _int(x)
    return "-" if v is None else f"{v:,}"


# -- files -----------------------------------------------------------------------------------

#: Lines read without a history line among them before a file is taken for something else.
_GIVE_UP_AFTER = 1000


def _is_event(doc: Any) -> bool:
    """Whether a decoded JSON value is an input record (what `run` reads, not what it writes)."""
    return isinstance(doc, dict) and doc.get("type") in ("impression", "click")


def _event_log(path: str) -> ReportError:
    return ReportError(f"{path}: an event log (impression and click records), not results: report reads what `run` "
                       f"writes, e.g. `stream-lis run --input {shlex.quote(path)} --history history.jsonl` then "
                       "`stream-lis report history.jsonl`")


def _no_known_shape(path: str, what: str) -> ReportError:
    return ReportError(f"{path}: a JSON {what} of no known shape (expected a --summary-json, an offline result with "
                       "\"mode\": \"offline\", or --history JSON Lines)")


def load_file(path: str) -> Source:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ReportError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ReportError(f"{path}: not UTF-8 text (byte {exc.start}): expected a --summary-json, --history or "
                          "offline --json file") from None
    if not text.strip():
        raise ReportError(f"{path}: empty file")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None
    if _is_event(doc):
        raise _event_log(path)
    if isinstance(doc, dict):
        if doc.get("mode") == "offline" or "split_at" in doc or "split" in doc:
            return _from_offline(path, doc)
        if "arms" in doc and ("run" in doc or "counters" in doc or "ended_arms" in doc):
            return _from_summary(path, doc)
        if "arms" in doc and ("watermark_ms" in doc or "t_wall" in doc):
            return _from_history(path, [doc], 0)
        raise _no_known_shape(path, "document")
    lines, skipped, events = [], 0, 0
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            d = json.loads(raw)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if isinstance(d, dict) and isinstance(d.get("arms"), list):
            lines.append(d)
        else:
            skipped += 1
            events += _is_event(d)
        if not lines and skipped >= _GIVE_UP_AFTER:
            break  # a history has a line within its first ones: this is something else (an event log?)
    if not lines:
        if events:
            raise _event_log(path)
        if doc is not None:  # valid JSON, but neither a result nor lines of results
            raise _no_known_shape(path, type(doc).__name__)
        raise ReportError(f"{path}: neither JSON nor --history JSON Lines")
    return _from_history(path, lines, skipped)


# -- /metrics --------------------------------------------------------------------------------

def parse_metrics(text: str, t_wall: float | None = None) -> Point:
    """One ``Point`` from Prometheus text exposition of stream_lis metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    arms: dict[tuple[str, str], ArmPoint] = {}
    lis: dict[tuple[str, str, str], dict[str, float | None]] = {}
    ais: dict[tuple[str, str], dict[str, float | None]] = {}
    pos: dict[tuple[str, str], int] = {}
    buckets: dict[float, float] = {}  # le -> cumulative count
    pt = Point(arms=[], t_wall=t_wall)
    delay_sum = None

    def arm(lbl: dict[str, str]) -> ArmPoint:
        k = (lbl.get("experiment", "?"), lbl.get("arm", "?"))
        if k not in arms:
            arms[k] = ArmPoint(*k)
        return arms[k]

    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            n, lbl, v = s.name, s.labels, _num(s.value)
            if not n.startswith("stream_lis_"):
                continue
            n = n[len("stream_lis_"):]
            if n in ("lis", "lis_ci_lower", "lis_ci_upper"):
                lis.setdefault((*arm(lbl).key, lbl.get("probe", "?")), {})[n] = v
            elif n in ("ais", "ais_ci_lower", "ais_ci_upper"):
                ais.setdefault(arm(lbl).key, {})[n] = v
            elif n == "alignment_efficiency":
                arm(lbl).efficiency[lbl.get("probe", "?")] = v
            elif n == "auc":
                a = arm(lbl)
                (a.auc if lbl.get("window") != "cumulative" else a.auc_cumulative)[lbl.get("learner", "?")] = v
            elif n == "production_auc" and lbl.get("window") != "cumulative":
                arm(lbl).production_auc = v
            elif n == "ctr":
                arm(lbl).ctr = v
            elif n == "impressions_total":
                arm(lbl).impressions = _int(v)
            elif n == "window_examples":
                arm(lbl).window_examples = _int(v)
            elif n == "labelled_examples_total":
                a = arm(lbl)
                a.labelled = (a.labelled or 0) + (_int(v) or 0)
                if lbl.get("label") == "positive":
                    pos[a.key] = _int(v) or 0
            elif n == "records_total":  # one sample per input partition from a Kafka worker
                pt.records = (pt.records or 0) + (_int(v) or 0)
            elif n == "watermark_timestamp_seconds" and v is not None:
                pt.watermark_ms = v * 1000.0
            elif n == "label_delay_seconds_bucket":  # per partition from a Kafka worker: added up
                le = _bound(lbl.get("le"))
                buckets[le] = buckets.get(le, 0.0) + (v or 0.0)
            elif n == "label_delay_seconds_sum":
                delay_sum = (delay_sum or 0.0) + (v or 0.0)
    for (e, a_, p), d in lis.items():
        arms[(e, a_)].lis[p] = Iv(d.get("lis"), d.get("lis_ci_lower"), d.get("lis_ci_upper"))
    for k, d in ais.items():
        arms[k].ais = Iv(d.get("ais"), d.get("ais_ci_lower"), d.get("ais_ci_upper"))
    for k, a in arms.items():  # AUC order as the evaluator lists learners: clean, leaky:*, mllm
        a.auc = dict(sorted(a.auc.items(), key=lambda kv: _learner_rank(kv[0])))
        if a.ctr is None and a.labelled:
            a.ctr = pos.get(k, 0) / a.labelled
    if buckets:
        ordered = sorted(buckets.items())
        counts, prev = [], 0.0
        for _, cum in ordered:
            counts.append(int(round(cum - prev)))
            prev = cum
        pt.label_delay = LabelDelay([b for b, _ in ordered], counts, delay_sum)
    pt.arms = list(arms.values())
    return pt


def _learner_rank(name: str) -> int:
    return 0 if name == "clean" else 2 if name == "mllm" else 1


def scrape_metrics(url: str, every_s: float, samples: int, timeout_s: float = 10.0,
                   log: TextIO | None = sys.stderr, sleep: Callable[[float], None] = time.sleep,
                   fetch: Callable[[str, float], str] | None = None) -> Source:
    """Fetch ``url`` (``/metrics`` appended when the path is empty) ``samples`` times, ``every_s`` apart.

    Ctrl-C ends the scraping early: the samples collected so far are the source (a long scrape
    is often stopped once it has seen enough); ``ScrapeFailed`` when there is none.
    """
    try:
        parts = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        parts.port  # noqa: B018 - parsed lazily: a bad port or IPv6 literal raises here
    except ValueError as exc:
        raise ReportError(f"--scrape: not a URL, {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ReportError(f"--scrape: expected an http(s) URL, got {url!r}")
    if parts.path in ("", "/"):
        parts = parts._replace(path="/metrics")
    url = urllib.parse.urlunsplit(parts)
    if samples < 1:
        raise ReportError("--samples must be at least 1")
    get = fetch or _http_get
    pts, failures = [], []
    interrupted = False
    for k in range(samples):
        try:
            if k:
                sleep(every_s)
            t = time.time()
            pt = parse_metrics(get(url, timeout_s), t)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            failures.append(f"scrape {k + 1}: {exc}")
            if log is not None:
                print(f"scrape {k + 1}/{samples}: failed: {exc}", file=log, flush=True)
            continue
        except KeyboardInterrupt:
            interrupted = True
            if log is not None:
                print(f"\nscraping interrupted after {k} of {samples} scrape(s)", file=log, flush=True)
            break
        pts.append(pt)
        if log is not None:
            print(f"scrape {k + 1}/{samples}: {len(pt.arms)} arm(s), records {_fmt_int(pt.records)}", file=log, flush=True)
    if not pts:
        if interrupted:
            raise ScrapeFailed(f"--scrape {url}: interrupted before any sample was scraped"
                               + (f" ({failures[-1]})" if failures else ""))
        raise ScrapeFailed(f"--scrape {url}: every scrape failed ({failures[-1] if failures else 'no samples'})")
    src = Source("scrape", url, pts)
    src.info.append(("input", f"scraped /metrics: {url}"))
    src.info.append(("scrapes", f"{len(pts)} of {samples}, every {every_s:g} s"
                     + (f" ({len(failures)} failed)" if failures else "")
                     + (" (interrupted: the rest not taken)" if interrupted else "")))
    src.info.append(("wall time", f"{_utc(pts[0].t_wall or 0)} to {_utc(pts[-1].t_wall or 0)} UTC"))
    _event_span(src)
    if pts[-1].records is not None:
        src.info.append(("records", f"{pts[-1].records:,}"))
    src.notes += failures[:5]
    return src


def _http_get(url: str, timeout_s: float) -> str:
    req = urllib.request.Request(url, headers={"Accept": "text/plain"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 (scheme checked)
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}")
        return resp.read(64 << 20).decode("utf-8", "replace")


def point_to_history(p: Point, run_id: str) -> dict[str, Any]:
    """A scraped point as a ``--history`` line, so a scrape can be saved and reported again."""
    def iv(x: Iv | None) -> dict[str, Any] | None:
        return None if x is None else {"value": x.value, "low": x.low, "high": x.high}

    arms = [{"experiment": a.experiment, "arm": a.arm, "window_examples": a.window_examples,
             "learners": {n: {"auc_window": v, "auc_cumulative": a.auc_cumulative.get(n)} for n, v in a.auc.items()},
             "lis": {k: iv(v) for k, v in a.lis.items()}, "ais": iv(a.ais), "efficiency": a.efficiency,
             "production_auc_window": a.production_auc, "ctr": a.ctr, "impressions": a.impressions,
             "labelled": {"total": a.labelled}} for a in p.arms]
    d: dict[str, Any] = {"run_id": run_id, "t_wall": p.t_wall, "watermark_ms": p.watermark_ms, "records": p.records, "arms": arms}
    if p.label_delay is not None:
        d["label_delay"] = {"le": ["+Inf" if math.isinf(b) else b for b in p.label_delay.bounds],
                            "counts": p.label_delay.counts, "sum": p.label_delay.total_s}
    return d


# -- helpers ---------------------------------------------------------------------------------

def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def _event_span(src: Source) -> None:
    wms = [p.watermark_ms for p in src.points if p.watermark_ms is not None]
    if wms:
        src.info.append(("event time", f"{_utc(wms[0] / 1000)} to {_utc(wms[-1] / 1000)} UTC (watermark)"))


def iter_arm_keys(points: Iterable[Point]) -> list[tuple[str, str]]:
    """Every (experiment, arm) in order of first appearance."""
    seen: dict[tuple[str, str], None] = {}
    for p in points:
        for a in p.arms:
            seen.setdefault(a.key, None)
    return list(seen)
