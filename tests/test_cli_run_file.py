"""`stream-lis run --input FILE` as a user runs it: malformed lines, dead letters, summary JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stream_lis.simulator import Simulator, SimulatorConfig

CLI = [sys.executable, "-m", "stream_lis"]
FAST = ["--set", "time.horizon=10m", "--set", "time.attribution_window=5m", "--set", "evaluation.window_size=2000"]

BAD_LINES = [
    (b"{not json", "unparseable"),
    (b'{"type": "click", "ts": 5}', "missing_field"),
    (b'{"type": "click", "impression_id": 7, "ts": 5}', "wrong_type"),
    (b'{"type": "impression", "impression_id": "x", "ts": 1, "user_id": "u", "item_id": "i", '
     b'"experiment": "lis_demo", "arm": "control", "score": 1e999}', "non_finite"),
    (b'{"type": "impression", "impression_id": "y", "ts": 1, "user_id": "u", "item_id": "i", '
     b'"experiment": "lis_demo", "arm": "control", "score": 1.5}', "out_of_range"),
    (b'{"type": "view", "impression_id": "x", "ts": 1}', "unknown_type"),
    (b'{"type": "click", "impression_id": "' + b"x" * 100_000 + b'", "ts": 1}', "oversized"),
    (b'[1, 2, 3]', "wrong_type"),
]


@pytest.fixture(scope="module")
def event_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ev") / "events.jsonl"
    enc = json.dumps
    good = [enc(e).encode() for e in Simulator(SimulatorConfig(impressions=8000, seed=5)).events()]
    lines = list(good)
    for k, (bad, _) in enumerate(BAD_LINES):
        lines.insert(100 + 500 * k, bad)
    lines.insert(50, b"")  # blank lines are skipped, not errors
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, len(good)


def test_file_with_malformed_lines_is_fully_processed_and_every_bad_line_dead_lettered(event_file, tmp_path):
    path, n_good = event_file
    summary, dead = tmp_path / "s.json", tmp_path / "dead.jsonl"
    proc = subprocess.run([*CLI, "run", "--input", str(path), "--port", "-1", "--quiet", "--summary-json", str(summary),
                           "--dead-letters", str(dead), *FAST], capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    doc = json.loads(summary.read_text())
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    invalid = doc["counters"]["invalid"]
    # every malformed line is counted under its reason and written with it
    expected: dict[str, int] = {}
    for _, reason in BAD_LINES:
        expected[reason] = expected.get(reason, 0) + 1
    for reason, n in expected.items():
        assert invalid.get(reason, 0) >= n, (reason, invalid)
    assert len(letters) == sum(invalid.values())
    assert {d["reason"] for d in letters} >= set(expected)
    oversized = [d for d in letters if d["reason"] == "oversized"]
    assert oversized and len(oversized[0]["raw"]) <= 65_537
    # ... and the stream went on: every well-formed record was processed
    # every record counted once: accepted, or rejected under its reason (the simulator plants
    # late and duplicate ones among the good lines)
    assert doc["counters"]["records"] + sum(invalid.values()) == n_good + len(BAD_LINES)
    assert doc["counters"]["records"] < n_good
    assert doc["run"]["records"] == n_good + len(BAD_LINES)
    labelled = sum(a["labelled"]["total"] for a in doc["arms"])
    impressions = sum(a["impressions"] for a in doc["arms"])
    assert labelled == impressions > 0
    # each dead letter names its line, which holds its record: rejected when read (malformed)
    # or later (late, duplicate), before and after the blank line
    lines = path.read_bytes().split(b"\n")
    for d in letters:
        name, _, line = d["source"].rpartition(":")
        assert name == str(path), d["source"]
        held = lines[int(line) - 1].decode()
        assert held == d["raw"] or (d["reason"] == "oversized" and held.startswith(d["raw"])), (d["source"], d["reason"])
    assert {d["reason"] for d in letters} > {r for _, r in BAD_LINES}  # late or duplicate ones too


def test_summary_json_matches_final_table(event_file, tmp_path):
    path, _ = event_file
    summary = tmp_path / "s.json"
    proc = subprocess.run([*CLI, "run", "-i", str(path), "--port", "-1", "-q", "--summary-json", str(summary),
                           "--dead-letters", str(tmp_path / "d.jsonl"), *FAST], capture_output=True, timeout=300)
    assert proc.returncode == 0
    out = proc.stdout.decode()
    doc = json.loads(summary.read_text())
    for arm in doc["arms"]:
        fi = arm["lis"]["future_item"]
        assert f"LIS {fi['value']:+.4f} [{fi['low']:+.4f}, {fi['high']:+.4f}]" in out
        assert set(arm["learners"]) == {"clean", "leaky:future_item", "leaky:next_click", "leaky:co_click", "leaky:noise", "mllm"}


def test_stdin_input(tmp_path):
    lines = b"\n".join(json.dumps(e).encode() for e in Simulator(SimulatorConfig(impressions=500, seed=1)).events())
    proc = subprocess.run([*CLI, "run", "-i", "-", "--port", "-1", "-q", "--dead-letters", str(tmp_path / "d"),
                           "--summary-json", str(tmp_path / "s.json"), *FAST], input=lines, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads((tmp_path / "s.json").read_text())["run"]["records"] == len(lines.splitlines())


def test_help_explains_every_subcommand_and_option():
    out = subprocess.run([*CLI, "run", "--help"], capture_output=True, timeout=60).stdout.decode()
    for opt in ("--input", "--config", "--duration", "--max-events", "--port", "--summary-json", "--set", "--dead-letters"):
        assert opt in out
    top = subprocess.run([*CLI, "--help"], capture_output=True, timeout=60).stdout.decode()
    assert "run" in top and "simulate" in top


def test_clear_errors_for_bad_config_and_missing_input(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[time]\nhorizon = "soon"\n')
    proc = subprocess.run([*CLI, "run", "--config", str(bad), "--port", "-1"], capture_output=True, timeout=60)
    assert proc.returncode == 2 and b"horizon" in proc.stderr and b"Traceback" not in proc.stderr
    proc = subprocess.run([*CLI, "run", "-i", str(tmp_path / "missing.jsonl"), "--port", "-1"], capture_output=True, timeout=60)
    assert proc.returncode == 2 and b"cannot read --input" in proc.stderr and b"no such file" in proc.stderr
    proc = subprocess.run([*CLI, "run", "--set", "probes.enabled=[\"magic\"]", "--port", "-1"], capture_output=True, timeout=60)
    assert proc.returncode == 2 and b"magic" in proc.stderr


def test_max_events_stops_early_and_still_flushes(tmp_path):
    proc = subprocess.run([*CLI, "run", "--impressions", "20000", "--max-events", "3000", "--port", "-1", "-q",
                           "--dead-letters", str(tmp_path / "d"), "--summary-json", str(tmp_path / "s.json"), *FAST],
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["run"]["records"] == 3000 and doc["run"]["stopped_by"] == "--max-events"
    assert doc["pending_impressions"] == 0 and doc["held_examples"] == 0


def test_simulate_is_reproducible(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for p in (a, b):
        subprocess.run([*CLI, "simulate", "--impressions", "300", "--seed", "4", "-o", str(p)], check=True, timeout=60)
    assert a.read_bytes() == b.read_bytes() and len(a.read_bytes().splitlines()) >= 300
