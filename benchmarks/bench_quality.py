"""Quality of the fast learners against per-event River logistic regression, same stream.

On one pre-generated simulator stream, the embedded engine runs once per learner, each in
its own process (the whole pipeline: join, horizon, probes, every learner of every arm):

* ``river``: ``river.linear_model.LogisticRegression``, one ``learn_one`` per event
  (``learner.batch_size=1``): the reference;
* ``ftrl`` / ``fm``: the built-in vectorised learners on micro-batches of ``--batch-size``;
* ``river-fm`` (on request): ``river.facto.FMClassifier`` per event, 8 factors like ``fm``.

Every built-in probe runs (``external`` on the simulator's preference dataset). For every arm
and learner column (clean, leaky:<probe>, mllm) it prints the progressive (since-start,
prequential) AUC of each learner and each fast learner's difference to River LR, then one
PASS/FAIL line per fast learner and batch size: PASS when every column is within
``--target`` (0.005) of River LR, above or below (parity: a learner better on some columns
than the reference moves LIS and AIS as much as one worse), and the LIS each learner reports
per arm and probe beside River LR's, since LIS is a difference of two columns, and each fast
learner's largest LIS difference to River LR's.

Usage: python benchmarks/bench_quality.py [--impressions N] [--seed S] [--batch-size B ...]
                                          [--models ftrl,fm,river-fm] [--params MODEL=JSON ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile

from common import all_probes, replay, revision, run_child, write_stream

REFERENCE = "river"
MODELS = {
    "river": {"learner.model": "river.linear_model.LogisticRegression", "learner.batch_size": 1},
    "ftrl": {"learner.model": "ftrl"},
    "fm": {"learner.model": "fm"},
    # River's own factorisation machine, per event (the batch sizes do not apply): what a
    # per-event reference for ``fm`` would be.
    "river-fm": {"learner.model": "river.facto.FMClassifier", "learner.batch_size": 1,
                 "learner.params": {"n_factors": 8}},
}
#: Models run one event at a time (once, whatever ``--batch-size``).
PER_EVENT = ("river-fm",)


def child(path: str, overrides: str) -> None:
    res, dt, _ = replay(path, json.loads(overrides))
    arms = {a.arm: {n: s.auc_cumulative for n, s in a.learners.items()} for a in res.snapshot.arms}
    print(json.dumps({"seconds": dt, "labelled": sum(a.labelled for a in res.snapshot.arms), "auc": arms}))


def largest(diffs: list[float]) -> float:
    """The signed difference largest in size; NaN when any is NaN (a column without AUC gives
    no verdict, where skipping it would report a perfect +0.0000)."""
    if not diffs or any(d != d for d in diffs):
        return float("nan")
    return max(diffs, key=abs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impressions", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batch-size", type=int, nargs="+", default=[512], help="micro-batch sizes of the fast learners (default: the config default, 512)")
    ap.add_argument("--models", default="ftrl,fm",
                    help="learners to compare with River LR: ftrl, fm, river-fm (River's FMClassifier per event, "
                         "8 factors; about 8x as long as River LR)")
    ap.add_argument("--params", action="append", default=[], metavar="MODEL=JSON",
                    help='learner.params of a fast learner, e.g. fm=\'{"lr": 0.02}\'')
    ap.add_argument("--target", type=float, default=0.005)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    models = [m for m in args.models.split(",") if m]
    params = {k: json.loads(v) for k, _, v in (p.partition("=") for p in args.params)}
    choices = ", ".join(k for k in MODELS if k != REFERENCE)
    unknown = [m for m in models if m not in MODELS or m == REFERENCE]
    if unknown:
        ap.error(f"--models: unknown {', '.join(unknown)} (choose from {choices})")
    stray = [m for m in params if m not in models]
    if stray:
        ap.error(f"--params: {', '.join(stray)} is not in --models ({', '.join(models)})")
    cmd = "python benchmarks/bench_quality.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        path, prefs = os.path.join(tmp, "stream.jsonl"), os.path.join(tmp, "preferences.jsonl")
        write_stream(path, args.impressions, args.seed, preferences=prefs)
        probes = all_probes(prefs)
        print(f"stream: {args.impressions:,} impressions (seed {args.seed}); progressive AUC since start; {revision()}")
        print(f"reproduce: {cmd.strip()}")
        runs: dict[str, dict] = {}
        print(f"running {REFERENCE} (batch 1) ...", file=sys.stderr, flush=True)
        runs[REFERENCE] = run_child(__file__, path, {**probes, **MODELS[REFERENCE]})
        for bs in args.batch_size:
            for m in models:
                if m in PER_EVENT and bs != args.batch_size[0]:
                    continue
                ov = {**probes, **MODELS[m]} if m in PER_EVENT else {**probes, **MODELS[m], "learner.batch_size": bs}
                if m in params:  # on top of the model's own (river-fm's 8 factors)
                    ov["learner.params"] = {**MODELS[m].get("learner.params", {}), **params[m]}
                label = m if m in PER_EVENT else f"{m}@{bs}"
                print(f"running {label} ...", file=sys.stderr, flush=True)
                runs[label] = run_child(__file__, path, ov)
    ref = runs[REFERENCE]["auc"]
    fast = [k for k in runs if k != REFERENCE]
    print("seconds: " + ", ".join(f"{k} {r['seconds']:.1f}" for k, r in runs.items()))
    if params:
        print("params: " + ", ".join(f"{k} {json.dumps(v)}" for k, v in params.items()))
    col_diffs: dict[str, list[float]] = {k: [] for k in fast}
    for arm, cols in ref.items():
        print(f"\n{arm}")
        head = f"  {'learner':<20}{'river LR':>9}" + "".join(f"{k:>12}{'delta':>8}" for k in fast)
        print(head)
        for col, a_ref in cols.items():
            line = f"  {col:<20}{a_ref:>9.4f}"
            for k in fast:
                a = runs[k]["auc"][arm][col]
                d = a - a_ref
                col_diffs[k].append(d)
                line += f"{a:>12.4f}{d:>+8.4f}"
            print(line)
    print()
    worst = {k: largest(col_diffs[k]) for k in fast}
    for k in fast:
        if worst[k] != worst[k]:
            print(f"FAIL {k}: a column has no AUC (the stream is shorter than the look-ahead horizon: raise --impressions)")
            continue
        ok = abs(worst[k]) <= args.target
        print(f"{'PASS' if ok else 'FAIL'} {k}: largest column difference {worst[k]:+.4f} vs River LR "
              f"(target within ±{args.target})")
    print("\nLIS (progressive AUC of leaky:probe - clean)")
    lis_diffs: dict[str, list[float]] = {k: [] for k in fast}  # a fast learner's LIS minus River LR's
    for arm, cols in ref.items():
        for probe in [c.split(":", 1)[1] for c in cols if c.startswith("leaky:")]:
            lis = {k: r["auc"][arm][f"leaky:{probe}"] - r["auc"][arm]["clean"] for k, r in runs.items()}
            print(f"  {arm:<12}{probe:<14}" + "".join(f"{k} {v:+.4f}   " for k, v in lis.items()))
            for k in fast:
                lis_diffs[k].append(lis[k] - lis[REFERENCE])
    for k in fast:  # what the service reports: how far each learner's LIS is from River LR's
        d = largest(lis_diffs[k])
        print(f"largest LIS difference {k} - River LR: " + ("n/a (no AUC)" if d != d else f"{d:+.4f}"))


if __name__ == "__main__":
    main()
