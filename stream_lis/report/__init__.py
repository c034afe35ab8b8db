"""``stream-lis report``: a run's results as one self-contained HTML file with plots.

Inputs (any number, each its own section; with two or more, a figure compares their final
LIS and AIS, e.g. streaming against offline):

- a history from ``stream-lis run --history PATH`` (time series),
- a ``--summary-json`` of ``stream-lis run`` (one point in time),
- the JSON of ``stream-lis offline --json`` (one point; shape in ``stream_lis.report.load``),
- a running service's ``/metrics``, scraped N times S seconds apart (time series).

>>> from stream_lis.report import FIGURE_IDS
>>> FIGURE_IDS[0]
'lis_ais'

``stream_lis.report.history`` (the ``--history`` writer) imports nothing heavy; matplotlib is
imported only when figures are drawn.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

from .load import ReportError, Source, load_file, scrape_metrics
from .plots import FIGURE_IDS

__all__ = ["FIGURE_IDS", "Report", "ReportError", "Source", "build_report", "load_file", "scrape_metrics"]


@dataclass
class Report:
    html: str
    sources: list[Source]
    figures: list[list[str]] = field(default_factory=list)  # figure ids of each input, in order
    pngs: dict[str, bytes] = field(default_factory=dict)  # figure id (of the first input, or comparison) -> PNG
    #: font -> characters of the names it had no glyph for (drawn as boxes; ``plots.missing_glyphs``)
    missing_glyphs: dict[str, set[str]] = field(default_factory=dict)


def build_report(sources: Sequence[Source], title: str = "stream-lis report") -> Report:
    from .html import document, level_of
    from .plots import comparison_fig, figures, missing_glyphs

    if not sources:
        raise ReportError("nothing to report: give an input file or --scrape URL")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        per = [figures(s, level_of(s)) for s in sources]
        names = [_short(s) for s in sources]
        comp = comparison_fig(sources, names)
    doc = document(sources, per, comp, title)
    rep = Report(doc, list(sources), [[f.id for f in figs] for figs in per], missing_glyphs=missing_glyphs(caught))
    for f in per[0]:
        rep.pngs[f.id] = f.png
    if comp is not None:
        rep.pngs[comp.id] = comp.png
    return rep


def _short(s: Source) -> str:
    import os

    base = os.path.basename(s.name.rstrip("/")) if s.kind != "scrape" else s.name
    return f"{s.kind}: {base}"
