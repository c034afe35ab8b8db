"""Memory of the embedded engine on a long stream: is it flat?

Feeds the simulator's records straight into ``Engine.process_records`` in chunks, in this
process (no file, no subprocess), and prints every ``--every`` impressions the current RSS
(``VmRSS`` of /proc/self/status) and the peak (``ru_maxrss``), then the ratio
RSS(end) / RSS(first report) against the target 1.10 (PASS/FAIL). The issue's target is
RSS(10M) / RSS(1M) <= 1.10: the engine's state (pending joins, behaviour logs, look-ahead
buffers, windows, learners) must be bounded on an endless stream.

``--tracemalloc`` also snapshots Python allocations at the first two reports and prints the
lines whose allocations grew most in between (where memory grows, if it grows). It slows
the run about 2-3x.

Usage:
    python benchmarks/bench_memory.py                          # 10,000,000 impressions (long)
    python benchmarks/bench_memory.py --impressions 2000000    # a check: ratio RSS(2M)/RSS(1M)
    python benchmarks/bench_memory.py --impressions 2000000 --tracemalloc
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import resource
import sys
import time

from common import revision  # noqa: E402  (also puts this checkout first on the import path)

TARGET = 1.10


def vm_rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impressions", type=int, default=10_000_000)
    ap.add_argument("--every", type=int, default=1_000_000, help="report every N impressions (default 1M)")
    ap.add_argument("--chunk", type=int, default=5_000, help="records per process_records call")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="config override, as for stream-lis (values are JSON, else strings)")
    ap.add_argument("--tracemalloc", action="store_true", help="diff Python allocations between the first two reports")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()

    import json

    from stream_lis.config import load_config
    from stream_lis.engine import Engine
    from stream_lis.runtime.sources import simulator_records
    from stream_lis.simulator import SimulatorConfig

    overrides = {}
    for kv in args.sets:
        k, _, v = kv.partition("=")
        try:
            overrides[k] = json.loads(v)
        except json.JSONDecodeError:
            overrides[k] = v
    cfg = load_config(None, overrides)
    if args.tracemalloc:
        import tracemalloc
        tracemalloc.start(1)
    # Every built-in probe, as `stream-lis run` on the simulator: ``external`` reads the items'
    # planted quality as the simulator makes them.
    from stream_lis.probes import ExternalProbe, build_probes

    probes = build_probes(cfg.probes)
    truth = None
    if "external" not in cfg.probes.enabled:
        truth = ExternalProbe()
        probes.append(truth)
    engine = Engine(cfg, probes=probes)
    cmd = " ".join([os.path.relpath(sys.executable), *sys.argv])
    print(f"# {cmd}")
    print(f"# simulator seed {args.seed}, {args.impressions:,} impressions, chunks of {args.chunk:,}; probes "
          f"{', '.join(p.name for p in probes)}; {revision()}; python {platform.python_version()}, {os.cpu_count()} cores")
    print(f"{'impressions':>12}{'records':>13}{'VmRSS MiB':>11}{'maxRSS MiB':>12}{'pending':>10}{'held':>8}{'rec/s':>9}")
    records = imps = 0
    next_report = args.every
    rows: list[tuple[int, float, float]] = []
    snaps = []
    it = simulator_records(SimulatorConfig(impressions=args.impressions, seed=args.seed),
                           truth.set_vector if truth is not None else None)
    t0 = last_t = time.monotonic()
    last_rec = 0
    while True:
        chunk = list(itertools.islice(it, args.chunk))
        if not chunk:
            break
        engine.process_records(chunk)
        records += len(chunk)
        imps += sum(1 for r in chunk if r.startswith(b'{"type":"impression"'))
        if imps >= next_report:
            next_report += args.every
            now = time.monotonic()
            snap = engine.snapshot()
            cur, peak = vm_rss_mib(), max_rss_mib()
            rows.append((imps, cur, peak))
            print(f"{imps:>12,}{records:>13,}{cur:>11.1f}{peak:>12.1f}{snap.pending_impressions:>10,}"
                  f"{snap.held_examples:>8,}{(records - last_rec) / (now - last_t):>9,.0f}", flush=True)
            last_t, last_rec = now, records
            if args.tracemalloc and len(snaps) < 2:
                gc.collect()
                snaps.append(tracemalloc.take_snapshot())
    elapsed = time.monotonic() - t0
    engine.flush()
    print(f"# {records:,} records in {elapsed:.0f} s ({records / elapsed:,.0f} rec/s); after flush: "
          f"VmRSS {vm_rss_mib():.1f} MiB, maxRSS {max_rss_mib():.1f} MiB")
    if len(snaps) == 2:
        print(f"# tracemalloc: Python allocations that grew most between {rows[0][0]:,} and {rows[1][0]:,} impressions")
        for stat in snaps[1].compare_to(snaps[0], "lineno")[:args.top]:
            print(f"#   {stat.size_diff / 2**20:+8.2f} MiB {stat.count_diff:+10,} blocks  {stat.traceback}")
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        for label, k in (("VmRSS", 1), ("maxRSS", 2)):
            ratio = last[k] / first[k]
            verdict = "PASS" if ratio <= TARGET else "FAIL"
            print(f"{label}({last[0] / 1e6:g}M) / {label}({first[0] / 1e6:g}M) = {last[k]:.1f} / {first[k]:.1f} = "
                  f"{ratio:.3f}  {verdict} (target <= {TARGET})")
        return 0
    print("fewer than two reports: nothing to compare (raise --impressions or lower --every)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
