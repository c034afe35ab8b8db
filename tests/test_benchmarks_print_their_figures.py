"""The benchmark scripts still run end to end and print their figures (on a small stream:
the figures themselves are for a person to read, not for a test to time)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks")


def _run(script: str, *args: str) -> str:
    out = subprocess.run([sys.executable, os.path.join(BENCH, script), *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_checkpoint_benchmark_restores_what_it_saved_and_compares_layouts():
    out = _run("bench_checkpoint.py", "--impressions", "4000", "--rate", "1.5", "--rounds", "1")
    rows = [line for line in out.splitlines() if line.startswith(("join:", "eval: arm"))]
    assert len(rows) == 3, out  # the labeller and the simulator's two arms
    for row in rows:
        size = int(re.search(r"([\d,]+) (pending|held)", row).group(1).replace(",", ""))
        assert size > 0, row  # mid-stream: there is state to save
        assert re.search(r"\d+\.\dx$", row), row
    # the evaluation stage's dedupe table, copied while the stage holds still
    dedupe = re.search(r"^eval: dedupe table \(([\d,]+) impressions\): pause [\d.]+ ms \(copied\).*\((\d+)x this pause\)$",
                       out, re.M)
    assert dedupe and int(dedupe.group(1).replace(",", "")) > 0, out
    assert "reproduce: python benchmarks/bench_checkpoint.py --impressions 4000" in out


def test_engine_benchmark_prints_throughput_against_its_target():
    out = _run("bench_engine.py", "--impressions", "3000", "--rounds", "1", "--no-naive", "--impressions-per-s", "50",
               "--set", "time.horizon=10m")
    assert re.search(r"^engine\s+[\d,]+\s+[\d,]+", out, re.M), out
    assert "target 100,000" in out
    assert "50 impressions per s" in out and "--impressions-per-s 50 --set time.horizon=10m" in out, out


def test_quality_benchmark_gives_no_verdict_on_a_stream_too_short_for_an_auc():
    # 3,000 impressions end before the default 1 h horizon closes: no column has an AUC, and
    # neither the columns' nor the LIS verdict may read as a perfect match.
    out = _run("bench_quality.py", "--impressions", "3000", "--models", "ftrl")
    assert "FAIL ftrl@512: a column has no AUC" in out, out
    assert "largest LIS difference ftrl@512 - River LR: n/a (no AUC)" in out, out
    assert "+0.0000" not in out, out
