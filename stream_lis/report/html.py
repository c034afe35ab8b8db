"""The report as one self-contained HTML file: inline CSS, figures as base64 PNG ``data:`` URIs, no
script, no external reference; it opens without network.

Per input: a header saying what the input was, a table of the final numbers per arm (every
number in its own cell with ``data-metric``/``data-probe``/``data-field`` attributes, so they
can be checked as text), then the figures.
"""

from __future__ import annotations

import base64
import html
import time
from typing import Sequence

from .. import __version__
from .load import ArmPoint, Iv, Source
from .plots import Fig

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;max-width:1060px;color:#222;padding:0 16px}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em;margin:1.4em 0 .4em}.sub{color:#666;margin-top:0}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 14px;font-size:.9em}dl.meta dt{color:#666}dl.meta dd{margin:0}
table.final{border-collapse:collapse;font-size:.85em;margin:.4em 0 1.2em;font-variant-numeric:tabular-nums}
table.final caption{text-align:left;font-weight:600;padding:4px 0}
table.final th,table.final td{border-bottom:1px solid #e4e4e4;padding:3px 9px;text-align:right}
table.final th:first-child,table.final td:first-child{text-align:left}table.final thead th{background:#f6f6f6}
tr.sig td.value{font-weight:600}figure{margin:1.2em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#444;margin-top:4px}.notes{font-size:.85em;color:#8a5300}
footer{margin-top:3em;font-size:.8em;color:#888}
"""


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _td(text: str, cls: str = "", **data: str) -> str:
    attrs = "".join(f' data-{k}="{html.escape(v)}"' for k, v in data.items())
    c = f' class="{cls}"' if cls else ""
    return f"<td{c}{attrs}>{html.escape(text)}</td>"


def _learner_rows(a: ArmPoint) -> list[str]:
    names = list(a.auc)
    for probe in a.lis:
        if f"leaky:{probe}" not in names:
            names.append(f"leaky:{probe}")
    if a.ais is not None and "mllm" not in names:
        names.append("mllm")
    rank = {n: (0 if n == "clean" else 2 if n == "mllm" else 1) for n in names}
    return sorted(names, key=lambda n: rank[n])  # stable: clean, leaky:* in input order, mllm


def arm_table(a: ArmPoint, kind: str, level: str) -> str:
    streaming = kind != "offline"
    cap = [a.label]
    if a.impressions is not None:
        cap.append(f"impressions {a.impressions:,}")
    if a.labelled is not None:
        cap.append(f"{'labelled' if streaming else 'test examples'} {a.labelled:,}")
    if a.ctr is not None:
        cap.append(f"CTR {a.ctr * 100:.2f}%")
    if a.production_auc is not None:
        cap.append(f"production AUC {a.production_auc:.4f}")
    if a.window_examples is not None:
        cap.append(f"window {a.window_examples:,}")
    for k, v in a.extra.items():
        cap.append(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}")
    head = ["learner", "AUC (window)" if streaming else "AUC (test split)"]
    if streaming:
        head.append("AUC (since start)")
    head += ["score", "value", f"{level} CI low", f"{level} CI high", "excludes 0", "AIS/LIS"]
    rows = []
    for name in _learner_rows(a):
        iv: Iv | None = None
        metric, probe = "", ""
        if name.startswith("leaky:"):
            probe = name.split(":", 1)[1]
            iv, metric = a.lis.get(probe), "lis"
        elif name == "mllm":
            iv, metric = a.ais, "ais"
        cells = [_td(name), _td(_num(a.auc.get(name), ".4f"), "num", metric="auc", learner=name, field="value")]
        if streaming:
            cells.append(_td(_num(a.auc_cumulative.get(name), ".4f"), "num", metric="auc_cumulative", learner=name, field="value"))
        tags = {"metric": metric, "probe": probe} if probe else {"metric": metric}
        if iv is not None:
            cells += [_td(metric.upper()),
                      _td(_num(iv.value, "+.4f"), "num value", **tags, field="value"),
                      _td(_num(iv.low, "+.4f"), "num", **tags, field="low"),
                      _td(_num(iv.high, "+.4f"), "num", **tags, field="high"),
                      _td("*" if iv.significant else "")]
        else:
            cells += [_td("")] * 5
        if probe:
            e = a.efficiency.get(probe)
            cells.append(_td(_num(e, ".3f"), "num", metric="efficiency", probe=probe, field="value"))
        else:
            cells.append(_td(""))
        sig = ' class="sig"' if iv is not None and iv.significant else ""
        rows.append(f"<tr{sig}>{''.join(cells)}</tr>")
    ths = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return (f'<table class="final" data-experiment="{html.escape(a.experiment)}" data-arm="{html.escape(a.arm)}">'
            f"<caption>{html.escape(' · '.join(cap))}</caption><thead><tr>{ths}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def figure_html(fig: Fig, section: int) -> str:
    b64 = base64.b64encode(fig.png).decode("ascii")
    return (f'<figure id="s{section}-{fig.id}" data-figure="{fig.id}">'
            f'<img src="data:image/png;base64,{b64}" alt="{html.escape(fig.title)}" width="{fig.width_px}" height="{fig.height_px}">'
            f"<figcaption><b>{html.escape(fig.title)}.</b> {html.escape(fig.caption)}</figcaption></figure>")


def level_of(src: Source) -> str:
    return f"{src.confidence:.0%}" if src.confidence is not None else "95%"


KIND_TITLE = {"history": "run history", "summary": "final figures of a run", "offline": "offline LIS",
              "scrape": "scraped /metrics"}


def section_html(k: int, src: Source, figs: Sequence[Fig]) -> str:
    level = level_of(src)
    info = list(src.info)
    if src.confidence is None:
        info.append(("intervals", "95% assumed (the default evaluation.confidence_level; the input does not say)"))
    dl = "".join(f"<dt>{html.escape(a)}</dt><dd>{html.escape(b)}</dd>" for a, b in info)
    final = src.final
    when = "at the last point" if src.is_series else ""
    parts = [f'<section class="source" id="input-{k}" data-kind="{src.kind}">',
             f"<h2>Input {k}: {html.escape(KIND_TITLE.get(src.kind, src.kind))}</h2>",
             f'<dl class="meta">{dl}</dl>']
    if src.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in src.notes) + "</ul>")
    parts.append(f"<h3>Final numbers{(' (' + when + ')') if when else ''}</h3>")
    if final.arms:
        parts += [arm_table(a, src.kind, level) for a in final.arms]
    else:
        parts.append("<p>No arm has figures yet.</p>")
    if figs:
        parts.append("<h3>Figures</h3>")
        parts += [figure_html(f, k) for f in figs]
    parts.append("</section>")
    return "\n".join(parts)


def document(sources: Sequence[Source], per_source: Sequence[Sequence[Fig]], comparison: Fig | None,
             title: str = "stream-lis report") -> str:
    now = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    kinds = ", ".join(f"{KIND_TITLE.get(s.kind, s.kind)} ({s.name})" for s in sources)
    body = [f"<header><h1>{html.escape(title)}</h1>",
            f'<p class="sub">Generated {now} by stream-lis {__version__} from {len(sources)} input(s): {html.escape(kinds)}.</p>',
            "<p>LIS[probe] = AUC(leaky:probe) − AUC(clean): how much the preference data behind a probe could ever help "
            "the ranking model (an upper bound); AIS = AUC(mllm) − AUC(clean): how much the arm's MLLM representation "
            "does help; AIS / LIS: the share of that bound the MLLM captured (alignment efficiency).</p></header>"]
    for k, (src, figs) in enumerate(zip(sources, per_source), 1):
        body.append(section_html(k, src, figs))
    if comparison is not None:
        body.append('<section class="comparison" id="comparison"><h2>All inputs compared</h2>'
                    + figure_html(comparison, 0) + "</section>")
    body.append(f"<footer>stream-lis {__version__}: streaming Leakage Impact Score. This file is self-contained "
                "(figures embedded as PNG); it needs no network.</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
