"""`stream-lis report`: a self-contained HTML file whose numbers are the run's numbers.

Three inputs as a user produces them: the history and summary of `stream-lis run` on a small
simulator stream, an offline-shaped JSON written by hand, and `/metrics` scraped over loopback
from a live embedded runtime. Each report is parsed with the standard library and checked for
external references, its figures (PNG data URIs that decode), and its final-numbers table.
"""

from __future__ import annotations

import base64
import io
import json
import re
from contextlib import redirect_stderr, redirect_stdout
from html.parser import HTMLParser

import pytest

from stream_lis.cli import main
from stream_lis.config import load_config
from stream_lis.report import build_report, load_file, scrape_metrics
from stream_lis.runtime.embedded import EmbeddedRuntime
from stream_lis.runtime.sources import simulator_records
from stream_lis.simulator import SimulatorConfig

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]  # about 20-35 s in all: a run, renders, a scrape

SMALL = ["--impressions", "30000", "--set", "time.horizon=10m", "--set", "time.attribution_window=5m",
         "--set", "evaluation.window_size=2000"]
SERIES_FIGURES = ["lis_ais", "ais_efficiency", "auc", "ctr", "label_delay"]
POINT_FIGURES = ["lis_ais", "ais_efficiency", "auc", "ctr"]  # no label delay in a summary or offline result
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ReportParser(HTMLParser):
    """Collects what the checks need: every URL-bearing attribute, figures, and the table cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str, str]] = []  # tag, attribute, value
        self.tags: set[str] = set()
        self.figures: list[str] = []
        self.images: list[str] = []
        self.sections: list[str] = []
        self.cells: dict[tuple, str] = {}  # (section, experiment, arm, metric, probe|learner, field) -> text
        self._table: tuple[str, str] | None = None
        self._cell: tuple | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        for k in ("src", "href", "action", "data", "poster", "srcset", "background"):
            if k in a:
                self.urls.append((tag, k, a[k]))
        if tag == "section":
            self.sections.append(a.get("data-kind", ""))
        elif tag == "figure":
            self.figures.append(a["data-figure"])
        elif tag == "img":
            self.images.append(a["src"])
        elif tag == "table":
            self._table = (a["data-experiment"], a["data-arm"])
        elif tag == "td" and "data-metric" in a and self._table:
            who = a.get("data-probe") or a.get("data-learner") or ""
            self._cell = (len(self.sections), *self._table, a["data-metric"], who, a["data-field"])
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.cells[self._cell] = "".join(self._text).strip()
            self._cell = None
        elif tag == "table":
            self._table = None


def parse(html: str) -> ReportParser:
    p = ReportParser()
    p.feed(html)
    p.close()
    return p


def check_self_contained(html: str, p: ReportParser) -> None:
    for tag, attr, value in p.urls:
        assert not re.match(r"\s*(https?:|//|ftp:|file:)", value, re.I), (tag, attr, value[:80])
        if tag == "img":
            assert value.startswith("data:image/png;base64,"), value[:40]
    assert not {"script", "link", "iframe", "object", "embed"} & p.tags, p.tags
    assert not re.search(r"url\(|@import", html, re.I), "no external resource in CSS"
    for src in p.images:
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(PNG_MAGIC) and len(png) > 5_000


def fmt(x: float | None, spec: str = "+.4f") -> str:
    return "-" if x is None else format(x, spec)


def check_numbers(p: ReportParser, section: int, arms: list[dict]) -> int:
    """The final-numbers table shows each arm's LIS, AIS (value and CI) and AUCs to 4 decimals."""
    n = 0
    for a in arms:
        e, arm = a["experiment"], a["arm"]
        for probe, iv in a["lis"].items():
            for f in ("value", "low", "high"):
                assert p.cells[(section, e, arm, "lis", probe, f)] == fmt(iv[f]), (e, arm, probe, f)
                n += 1
        if a.get("ais") is not None:
            for f in ("value", "low", "high"):
                assert p.cells[(section, e, arm, "ais", "", f)] == fmt(a["ais"][f]), (e, arm, "ais", f)
                n += 1
        for learner, st in (a.get("learners") or a["auc"]).items():
            auc = st.get("auc_window", st.get("auc")) if isinstance(st, dict) else st
            assert p.cells[(section, e, arm, "auc", learner, "value")] == fmt(auc, ".4f"), (e, arm, learner)
            n += 1
    return n


def cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue() + err.getvalue()


@pytest.fixture(scope="module")
def run_outputs(tmp_path_factory):
    """`stream-lis run` on a small simulator stream with --history and --summary-json."""
    d = tmp_path_factory.mktemp("run")
    hist, summ = d / "history.jsonl", d / "summary.json"
    rc, text = cli("run", *SMALL, "--report-every", "0.05", "--port", "-1", "--quiet", "--history", str(hist),
                   "--summary-json", str(summ), "--dead-letters", str(d / "dead.jsonl"))
    assert rc == 0, text[-2000:]
    return hist, summ


def test_history_report_is_self_contained_with_every_figure_and_the_runs_numbers(run_outputs, tmp_path):
    hist, summ = run_outputs
    lines = [json.loads(x) for x in hist.read_text().splitlines()]
    summary = json.loads(summ.read_text())
    # the history: one line per live-table report, then the final one, which is the summary's state
    assert len(lines) >= 3 and lines[-1]["final"] is True and not any(x.get("final") for x in lines[:-1])
    assert [x["records"] for x in lines] == sorted(x["records"] for x in lines)
    assert lines[-1]["arms"] == summary["arms"]
    assert sum(lines[-1]["label_delay"]["counts"]) == sum(a["labelled"]["total"] for a in summary["arms"])

    out = tmp_path / "report.html"
    png = tmp_path / "lis_ais.png"
    rc, text = cli("report", str(hist), "-o", str(out), "--save-figure", f"lis_ais={png}")
    assert rc == 0, text
    html = out.read_text(encoding="utf-8")
    p = parse(html)
    check_self_contained(html, p)
    assert p.sections == ["history"]
    assert p.figures == SERIES_FIGURES and len(p.images) == len(SERIES_FIGURES)
    assert check_numbers(p, 1, summary["arms"]) >= 2 * (3 * 6 + 7)  # 2 arms: 5 probes + AIS, 7 learners
    assert "history (stream-lis run --history)" in html and str(hist) in html
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_summary_and_offline_inputs_give_bar_charts_and_their_numbers(run_outputs, tmp_path):
    _, summ = run_outputs
    summary = json.loads(summ.read_text())
    offline_arms = [
        {"experiment": "lis_demo", "arm": "control", "n_train": 7000, "n_test": 7600,
         "learners": {"clean": {"auc": 0.7012}, "leaky:future_item": {"auc": 0.7344}, "leaky:noise": {"auc": 0.7013},
                      "mllm": {"auc": 0.7061}},
         "lis": {"future_item": {"value": 0.0332, "low": 0.0241, "high": 0.0423},
                 "noise": {"value": 0.0001, "low": -0.0009, "high": 0.0011}},
         "ais": {"value": 0.0049, "low": -0.0012, "high": 0.011}, "efficiency": {"future_item": 0.1476, "noise": None},
         "ctr_test": 0.0631},
        {"experiment": "lis_demo", "arm": "treatment", "n_train": 7100, "n_test": 7700,
         "auc": {"clean": 0.7101, "leaky:future_item": 0.7463, "leaky:noise": 0.7099, "mllm": 0.7655},  # bare AUCs
         "lis": {"future_item": {"value": 0.0362, "low": 0.0252, "high": 0.0472},
                 "noise": {"value": -0.0002, "low": -0.0011, "high": 0.0007}},
         "ais": {"value": 0.0554, "low": 0.0431, "high": 0.0677}, "efficiency": {"future_item": 1.5304, "noise": None}},
    ]
    off = tmp_path / "offline.json"
    off.write_text(json.dumps({"mode": "offline", "split_at": 1767229200000, "confidence_level": 0.95,
                               "arms": offline_arms}))
    for src in (summ, off):  # each alone: its own report, bar charts with CI error bars
        out = tmp_path / f"{src.stem}.html"
        rc, text = cli("report", str(src), "-o", str(out))
        assert rc == 0, text
        html = out.read_text(encoding="utf-8")
        p = parse(html)
        check_self_contained(html, p)
        assert p.figures == POINT_FIGURES and len(p.images) == len(POINT_FIGURES)
        if src == summ:
            assert p.sections == ["summary"] and "--summary-json" in html
            check_numbers(p, 1, summary["arms"])
        else:
            assert p.sections == ["offline"] and "offline LIS" in html and "AUC (test split)" in html
            check_numbers(p, 1, offline_arms)
            assert p.cells[(1, "lis_demo", "treatment", "efficiency", "future_item", "value")] == "1.530"
    # both together: one section each, and a figure comparing their final LIS and AIS
    out = tmp_path / "both.html"
    rc, text = cli("report", str(summ), str(off), "-o", str(out))
    assert rc == 0, text
    p = parse(out.read_text(encoding="utf-8"))
    assert p.sections == ["summary", "offline", ""]
    assert p.figures == POINT_FIGURES + POINT_FIGURES + ["comparison"]
    check_numbers(p, 2, offline_arms)
    # an unknown document is refused with a message, not a traceback
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    rc, text = cli("report", str(bad), "-o", str(tmp_path / "x.html"))
    assert rc == 2 and "no known shape" in text


def test_scraping_a_live_runtime_over_loopback(tmp_path):
    cfg = load_config(None, {"evaluation.window_size": 1500, "time.horizon": "10m", "time.attribution_window": "5m"})
    rt = EmbeddedRuntime(cfg, port=0, host="127.0.0.1")
    try:
        records = list(simulator_records(SimulatorConfig(impressions=16_000, seed=11)))
        steps = [records[: len(records) // 2], records[len(records) // 2: 3 * len(records) // 4],
                 records[3 * len(records) // 4:]]
        with rt.lock:
            rt.engine.process_records(steps.pop(0))

        def advance(_seconds: float) -> None:  # between scrapes: the stream goes on (then ends)
            with rt.lock:
                if steps:
                    rt.engine.process_records(steps.pop(0))
                else:
                    rt.engine.flush()

        url = f"http://127.0.0.1:{rt.server.port}"  # /metrics is added
        src = scrape_metrics(url, 0.0, 4, timeout_s=10, log=None, sleep=advance)
        assert len(src.points) == 4 and [p.records for p in src.points] == sorted(p.records for p in src.points)
        rep = build_report([src])
        p = parse(rep.html)
        check_self_contained(rep.html, p)
        assert p.sections == ["scrape"] and p.figures == SERIES_FIGURES
        # the last scrape saw the flushed engine: the table shows the runtime's final numbers
        from stream_lis.summary import arm_summary

        final = [arm_summary(a) for a in rt.snapshot().arms]
        assert check_numbers(p, 1, final) > 20
        # the CLI path, and a scrape saved as history renders the same numbers again
        saved, out = tmp_path / "scraped.jsonl", tmp_path / "scrape.html"
        rc, text = cli("report", "--scrape", f"{url}/metrics", "--every", "0", "--samples", "2", "--save-scrape",
                       str(saved), "-o", str(out))
        assert rc == 0, text
        again = load_file(str(saved))
        assert again.kind == "history" and len(again.points) == 2
        for got, want in zip(again.final.arms, final):
            assert got.key == (want["experiment"], want["arm"])
            assert {k: fmt(v.value) for k, v in got.lis.items()} == {k: fmt(v["value"]) for k, v in want["lis"].items()}
            assert fmt(got.ais.value) == fmt(want["ais"]["value"])
        p2 = parse(out.read_text(encoding="utf-8"))
        assert p2.figures == SERIES_FIGURES
        check_numbers(p2, 1, final)
    finally:
        rt.close()
    # nobody listening: bounded failure with a message
    rc, text = cli("report", "--scrape", url, "--every", "0", "--samples", "2", "--timeout", "2",
                   "-o", str(tmp_path / "none.html"))
    assert rc == 1 and "every scrape failed" in text  # the service's state, not a usage mistake


@pytest.mark.parametrize("days", [0.001, 0.2, 3, 30, 400, 1100])
def test_event_time_axes_of_any_span_get_ticks_without_a_fallback_warning(days):
    """A history covering about 3 days (or 3 years) once fit no tick step of the date axis:
    matplotlib warned and fell back to arbitrary ticks."""
    import datetime as dt
    import warnings

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stream_lis.report.load import Point
    from stream_lis.report.plots import TimeAxis

    t0 = 1_767_225_600_000
    pts = [Point(arms=[], watermark_ms=t0 + int(days * 86_400_000 * k / 10)) for k in range(11)]
    axis = TimeAxis(pts)
    assert axis.dates and axis.x[-1] - axis.x[0] == dt.timedelta(milliseconds=pts[-1].watermark_ms - t0)
    fig, ax = plt.subplots()
    try:
        ax.plot(axis.x, range(11))
        axis.apply(ax)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fig.canvas.draw()
        assert 2 <= len(ax.get_xticks()) <= 8
    finally:
        plt.close(fig)


def test_names_the_font_cannot_draw_are_said_once_not_warned_per_glyph(run_outputs, tmp_path):
    """Arms named in CJK or with an emoji: matplotlib warned once per character and figure
    (about twenty lines of ``UserWarning: Glyph ... missing``). One line now says which
    characters show as boxes; the HTML text keeps them."""
    import warnings

    _, summ = run_outputs
    named = tmp_path / "named.json"
    named.write_text(summ.read_text().replace('"control"', '"对照"').replace('"treatment"', '"实验🚀"'), encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc, text = cli("report", str(named), "-o", str(tmp_path / "r.html"))
    assert rc == 0, text
    assert not [w for w in caught if "missing from font" in str(w.message)]
    said = [line for line in text.splitlines() if "has no glyph for" in line]
    assert len(said) == 1, text
    assert all(ch in said[0] for ch in "对照实验🚀") and "show as boxes" in said[0]
    assert "实验🚀" in (tmp_path / "r.html").read_text(encoding="utf-8")
