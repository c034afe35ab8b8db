"""Validation study: do stream_lis's numbers recover a planted truth?

1. Fidelity sweep: AIS of arms whose MLLM representation reconstructs the preference data at
   fidelity 0 .. 1, against LIS of that preference data (the ``external`` probe).
2. Coverage: over many seeds, how often the streaming 95% intervals of LIS[future_item] and
   AIS(treatment) cover the offline (batch, time-split) value on the same stream, and how
   often the ``noise`` probe's interval excludes 0.

Usage:
    python studies/validation_study.py sweep [--impressions 400000] [--png docs/fidelity-sweep.png]
    python studies/validation_study.py coverage [--seeds 50] [--impressions 60000]
Prints the figures; the README quotes them.
"""

from __future__ import annotations

import argparse
import time


def sweep(args: argparse.Namespace) -> None:
    from stream_lis.validation import fidelity_sweep

    t0 = time.time()
    pts = fidelity_sweep(impressions=args.impressions, seed=args.seed)
    print(f"fidelity sweep: {args.impressions:,} impressions, seed {args.seed}, {len(pts)} arms ({time.time() - t0:.0f} s)")
    print(f"{'fidelity':>8}  {'AIS (95% CI)':<28}{'LIS[external] (95% CI)':<28}")
    for p in pts:
        print(f"{p.fidelity:>8.2f}  {p.ais:+.4f} [{p.ais_low:+.4f}, {p.ais_high:+.4f}]   "
              f"{p.lis_external:+.4f} [{p.lis_low:+.4f}, {p.lis_high:+.4f}]")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        f = [p.fidelity for p in pts]
        fig, ax = plt.subplots(figsize=(7, 4), dpi=140)
        ax.fill_between(f, [p.lis_low for p in pts], [p.lis_high for p in pts], color="tab:orange", alpha=0.25,
                        label="LIS[external] 95% CI (the preference data's upper bound)")
        ax.plot(f, [p.lis_external for p in pts], color="tab:orange")
        ax.errorbar(f, [p.ais for p in pts], yerr=[[p.ais - p.ais_low for p in pts], [p.ais_high - p.ais for p in pts]],
                    fmt="o-", color="tab:blue", capsize=4, label="AIS of the arm's MLLM representation (95% CI)")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("fidelity of the MLLM representation to the preference data")
        ax.set_ylabel("AUC gain over the clean learner")
        ax.set_title("AIS approaches, and never exceeds, the LIS of the data it was aligned on")
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        fig.savefig(args.png)
        print(f"figure: {args.png}")


def coverage(args: argparse.Namespace) -> None:
    from stream_lis.validation import coverage_study

    t0 = time.time()
    res = coverage_study(seeds=range(1, args.seeds + 1), impressions=args.impressions, progress=True)
    print(f"coverage: {args.seeds} seeds x {args.impressions:,} impressions ({time.time() - t0:.0f} s)")
    for key, (covered, n) in res["coverage"].items():
        print(f"  streaming 95% CI of {key} covers the offline value: {covered}/{n} = {covered / n:.0%}")
    ex, n = res["noise_excludes_zero"]
    print(f"  noise LIS interval excludes 0: {ex}/{n} = {ex / n:.0%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("--impressions", type=int, default=400_000)
    s.add_argument("--seed", type=int, default=3)
    s.add_argument("--png", default=None)
    c = sub.add_parser("coverage")
    c.add_argument("--seeds", type=int, default=50)
    c.add_argument("--impressions", type=int, default=60_000)
    args = ap.parse_args()
    {"sweep": sweep, "coverage": coverage}[args.what](args)


if __name__ == "__main__":
    main()
