"""A run whose table has no figures says why in the table, not with a column of dashes or
an empty table: examples dropped at a memory bound (counted, in the summary too), an input of
clicks only or of rejected records (nothing to evaluate: exit 1), an input without a click (an
AUC needs both classes). The table says the configured confidence level, and which records it
counts: read, accepted, rejected."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from _helpers import sim_records

CLI = [sys.executable, "-m", "stream_lis"]
FAST = ["--set", "time.attribution_window=10s", "--set", "time.horizon=10s"]


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "ev.jsonl"
    path.write_bytes(b"\n".join(sim_records(6_000, seed=3)) + b"\n")
    return path


def _run(path, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "run", "--input", str(path), "--port", "-1", "-q",
                           "--dead-letters", str(tmp_path / "d.jsonl"), *extra],
                          capture_output=True, text=True, timeout=300)


def _only(events, tmp_path, kind: str):
    path = tmp_path / "part.jsonl"
    path.write_bytes(b"".join(r + b"\n" for r in events.read_bytes().splitlines() if json.loads(r)["type"] == kind))
    return path


def test_examples_dropped_at_a_memory_bound_are_counted_in_the_table_and_the_summary(events, tmp_path):
    summary = tmp_path / "s.json"
    proc = _run(events, tmp_path, "--set", "limits.max_held_examples=200", "--summary-json", str(summary))
    assert proc.returncode == 0, proc.stderr
    shed = json.loads(summary.read_text())["counters"]["shed"]
    assert shed["lookahead"] > 1_000
    assert f"shed (dropped at a memory bound): {shed['lookahead']:,} at limits.max_held_examples" in proc.stdout
    # the arms kept 200 examples each, all within the horizon of the end: the cause is the bound
    assert "examples were dropped at memory bounds" in proc.stdout and "raise the limit" in proc.stdout
    assert "give a longer input" not in proc.stdout


def test_a_run_without_a_bound_reached_counts_no_shed(events, tmp_path):
    summary = tmp_path / "s.json"
    proc = _run(events, tmp_path, *FAST, "--summary-json", str(summary))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(summary.read_text())["counters"]["shed"] == {}
    assert "shed (" not in proc.stdout


def test_clicks_only_is_nothing_to_evaluate(events, tmp_path):
    clicks = _only(events, tmp_path, "click")
    n = len(clicks.read_bytes().splitlines())
    proc = _run(clicks, tmp_path, *FAST)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"nothing to evaluate: no impression accepted: {n:,} clicks (all orphans" in proc.stdout
    assert "stream-lis run: nothing to evaluate: no impression accepted" in proc.stderr


def test_an_empty_input_is_nothing_to_evaluate(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    proc = _run(empty, tmp_path, *FAST)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "stream-lis run: nothing to evaluate: the input has no record" in proc.stderr


def test_impressions_without_a_click_say_an_auc_needs_both_classes(events, tmp_path):
    proc = _run(_only(events, tmp_path, "impression"), tmp_path, *FAST)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("labelled examples are negative (no click was attributed); an AUC needs both") == 2
    assert "  clean " not in proc.stdout  # no column of dashes


def test_the_table_says_the_configured_level_and_which_records_it_counts(events, tmp_path):
    proc = _run(events, tmp_path, *FAST, "--set", "evaluation.confidence_level=0.6")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "gain over clean (60% CI)" in out and "the 60% interval excludes 0" in out and "95%" not in out
    head = re.search(r"^records read ([\d,]+) \| accepted ([\d,]+) \| invalid ([\d,]+) \|", out, re.M)
    read, accepted, invalid = (int(g.replace(",", "")) for g in head.groups())
    assert read == len(events.read_bytes().splitlines()) == accepted + invalid and invalid > 0
    assert f"final (end of input: {read:,} records read in" in out


def test_the_live_table_says_the_configured_level(events):
    import io

    from stream_lis.config import load_config
    from stream_lis.runtime.embedded import EmbeddedRuntime

    cfg = load_config(None, {"time.attribution_window": "10s", "time.horizon": "10s",
                             "evaluation.confidence_level": 0.8})
    live = io.StringIO()
    EmbeddedRuntime(cfg, port=None).run(events.read_bytes().splitlines(), report_every_s=0, out=live)
    tables = live.getvalue()
    assert "gain over clean (80% CI)" in tables and "the 80% interval excludes 0" in tables and "95%" not in tables


def test_an_experiment_that_ended_during_the_run_keeps_its_figures_in_the_table(events, tmp_path):
    """An experiment idle past ``time.experiment_idle_timeout`` ends (its arms' figures are
    final): the final table still shows them, under a line saying it ended, as the summary
    does (``ended_arms``)."""
    last = max(json.loads(r)["ts"] for r in events.read_bytes().splitlines())
    path = tmp_path / "end.jsonl"
    # a stray click hours later moves the clock past the idle timeout (1h by default)
    path.write_bytes(events.read_bytes() + json.dumps({"type": "click", "impression_id": "x", "ts": last + 8 * 3600_000}).encode() + b"\n")
    summary = tmp_path / "s.json"
    proc = _run(path, tmp_path, *FAST, "--summary-json", str(summary))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(summary.read_text())
    assert doc["arms"] == [] and {a["arm"] for a in doc["ended_arms"]} == {"control", "treatment"}
    assert "experiment lis_demo ended (no impression for time.experiment_idle_timeout); its final figures:" in proc.stdout
    for a in doc["ended_arms"]:
        assert f"lis_demo / {a['arm']}: impressions {a['impressions']:,}" in proc.stdout
    assert "leaky:future_item" in proc.stdout and "interval excludes 0" in proc.stdout
