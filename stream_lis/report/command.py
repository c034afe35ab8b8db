"""The ``stream-lis report`` subcommand: its arguments and what it does."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

MAX_SAMPLES = 10_000


def _figure_path(text: str) -> tuple[str, str]:
    from . import FIGURE_IDS

    name, sep, path = text.partition("=")
    if not sep or name not in FIGURE_IDS or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH.png with NAME one of {', '.join(FIGURE_IDS)}; got {text!r}")
    return name, path


def add_parser(sub: Any) -> argparse.ArgumentParser:
    rp = sub.add_parser(
        "report", help="render results as one self-contained HTML report with plots",
        description="Turn results into one self-contained HTML file (figures embedded as PNG; it opens\n"
        "without network). Inputs, detected from their content:\n"
        "  - a history from `run --history`: LIS per probe with confidence bands, AIS, efficiency,\n"
        "    AUC per learner, CTR and label delay over time;\n"
        "  - a `run --summary-json` or an `offline --json` result: bar charts with confidence intervals;\n"
        "  - a running service's /metrics, scraped N times S seconds apart (--scrape): time series.\n"
        "Several inputs give one section each and a figure comparing their final LIS and AIS.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  stream-lis run --history history.jsonl --summary-json summary.json\n"
        "  stream-lis report history.jsonl -o report.html\n"
        "  stream-lis report summary.json offline.json -o compare.html\n"
        "  stream-lis report --scrape http://127.0.0.1:9464/metrics --every 15 --samples 40 -o live.html")
    rp.add_argument("inputs", nargs="*", metavar="INPUT", help="history JSONL, --summary-json, or offline JSON files")
    rp.add_argument("--output", "-o", default="report.html", metavar="FILE",
                    help="HTML file to write (default report.html; '-': stdout)")
    rp.add_argument("--scrape", metavar="URL", help="also scrape this /metrics endpoint (http or https; /metrics is added "
                    "to a bare host:port). Ctrl-C stops the scraping and reports the samples taken so far; when every "
                    "scrape failed the exit status is 1")
    rp.add_argument("--every", type=float, default=15.0, metavar="SECONDS", help="seconds between scrapes (default 15)")
    rp.add_argument("--samples", type=int, default=20, metavar="N", help=f"number of scrapes (default 20, at most {MAX_SAMPLES:,})")
    rp.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="timeout of one scrape (default 10)")
    rp.add_argument("--save-scrape", metavar="PATH", help="also append the scraped series as history JSON Lines (re-render "
                    "it later as an INPUT; '-': stdout)")
    rp.add_argument("--save-figure", action="append", type=_figure_path, default=[], metavar="NAME=PATH.png",
                    help="also save one figure of the first input as PNG, e.g. lis_ais=docs/report-example.png "
                    "(names: lis_ais, ais_efficiency, auc, ctr, label_delay, comparison; a file, not stdout)")
    rp.add_argument("--title", default="stream-lis report", help="title of the report")
    return rp


def run(args: argparse.Namespace) -> int:
    from . import ReportError, build_report, load_file, scrape_metrics
    from .load import ScrapeFailed

    try:
        import matplotlib  # noqa: F401  (drawn lazily; fail before any work is done)
    except ImportError:
        print("stream-lis report: needs matplotlib: pip install 'stream-lis[report]'", file=sys.stderr)
        return 2
    from .load import point_to_history

    err = sys.stderr
    if not args.inputs and not args.scrape:
        print("stream-lis report: give at least one INPUT file or --scrape URL", file=err)
        return 2
    if args.save_scrape and not args.scrape:
        print("stream-lis report: --save-scrape writes what --scrape collects; give --scrape URL too", file=err)
        return 2
    # NaN passes a comparison's negation: finite values are asked for outright.
    if not (1 <= args.samples <= MAX_SAMPLES and math.isfinite(args.every) and args.every >= 0
            and math.isfinite(args.timeout) and args.timeout > 0):
        print(f"stream-lis report: --samples must be 1..{MAX_SAMPLES:,}, --every a finite number >= 0, --timeout a "
              f"finite number > 0", file=err)
        return 2
    from ..paths import first_problem, output

    for name, path in args.save_figure:
        if path == "-":  # PNG bytes on a terminal: never what was meant
            print(f"stream-lis report: cannot write --save-figure {name}=-: a PNG figure goes to a file", file=err)
            return 2
    # The figures too: one written over an input, the report or another figure is a file lost.
    problem = first_problem([("", p) for p in args.inputs],
                            [("--output", args.output), ("--save-scrape", args.save_scrape),
                             *((f"--save-figure {name}=", path) for name, path in args.save_figure)])
    if problem is not None:
        print(f"stream-lis report: {problem}", file=err)
        return 2
    try:
        sources = [load_file(p) for p in args.inputs]
        if args.scrape:
            est = args.every * (args.samples - 1)
            print(f"scraping {args.scrape} {args.samples} time(s), every {args.every:g} s (about {est:,.0f} s)", file=err)
            src = scrape_metrics(args.scrape, args.every, args.samples, args.timeout, log=err)
            sources.append(src)
            if args.save_scrape:
                run_id = "scrape-" + time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                with output(args.save_scrape, "a") as fh:
                    for p in src.points:
                        fh.write(json.dumps(point_to_history(p, run_id), separators=(",", ":")) + "\n")
                if args.save_scrape != "-":
                    print(f"scraped series: {args.save_scrape}", file=err)
        rep = build_report(sources, args.title)
    except ReportError as exc:
        print(f"stream-lis report: {exc}", file=err)
        return 1 if isinstance(exc, ScrapeFailed) else 2  # the service's state / the inputs given
    # Every figure asked for is checked before anything is written: a report without it, or a
    # path it cannot go to, fails without leaving half the outputs behind.
    for name, path in args.save_figure:
        if name not in rep.pngs:
            print(f"stream-lis report: no figure {name!r} in this report (it has: {', '.join(rep.pngs)})", file=err)
            return 2
    with output(args.output, "w") as fh:
        fh.write(rep.html)
    for name, path in args.save_figure:
        with output(path) as fh:
            fh.write(rep.pngs[name])
        print(f"figure {name}: {path}", file=err)
    for font, chars in sorted(rep.missing_glyphs.items()):
        shown = " ".join(sorted(chars)[:20]) + (" ..." if len(chars) > 20 else "")
        print(f"stream-lis report: the figures' font ({font}) has no glyph for {len(chars)} character(s) of the "
              f"names: {shown}; they show as boxes in the figures (the report's text has them)", file=err)
    n = sum(len(v) for v in rep.figures) + ("comparison" in rep.pngs)
    out = err if "-" in (args.output, args.save_scrape) else sys.stdout  # stdout holds a result: kept clean
    print(f"report: {'stdout' if args.output == '-' else args.output} ({len(sources)} input(s), {n} figure(s), "
          f"{len(rep.html) / 1024:,.0f} KiB)", file=out)
    return 0
