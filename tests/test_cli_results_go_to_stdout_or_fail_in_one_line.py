"""A result written to '-' goes to stdout, which then holds that result alone (the table and
the notes go to stderr); a result that cannot be written after the checks at start (a full
disk: /dev/full) fails in one line naming the file, exit 1, not with a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from _helpers import sim_records

CLI = [sys.executable, "-m", "stream_lis"]
FAST = ["--set", "time.attribution_window=10s", "--set", "time.horizon=10s"]
FULL = "/dev/full"


def _cli(*args: str, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("out")
    events, history = d / "ev.jsonl", d / "h.jsonl"
    events.write_bytes(b"\n".join(sim_records(4_000, seed=3)) + b"\n")
    ran = _cli("run", "--input", str(events), "--port", "-1", "-q", "--history", str(history), "--report-every", "0.01",
               "--dead-letters", str(d / "d.jsonl"), *FAST)
    assert ran.returncode == 0, ran.stderr
    return d, events, history


def _run(files, *extra: str, **kw) -> subprocess.CompletedProcess:
    d, events, _ = files
    return _cli("run", "--input", str(events), "--port", "-1", "-q", "--dead-letters", str(d / "d.jsonl"), *FAST,
                *extra, **kw)


def test_run_summary_on_stdout_is_the_json_alone(files):
    proc = _run(files, "--summary-json", "-")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["arms"] and doc["run"]["stopped_by"] == "end of input"
    assert "records read" in proc.stderr and "summary:" not in proc.stderr
    assert not os.path.exists("-")


def test_run_history_on_stdout_is_json_lines_alone(files):
    proc = _run(files, "--history", "-", "--report-every", "0.01")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert lines and lines[-1]["final"] is True


def test_report_on_stdout_is_the_html_alone(files):
    _, _, history = files
    proc = _cli("report", str(history), "-o", "-")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("<!DOCTYPE html>") and proc.stdout.rstrip().endswith("</html>")
    assert "report: stdout (1 input(s)" in proc.stderr


needs_full = pytest.mark.skipif(not os.path.exists(FULL), reason="no /dev/full on this system")


@needs_full
@pytest.mark.parametrize("command", ["simulate", "offline", "report", "run-summary", "run-history"])
def test_a_full_disk_is_one_line_naming_the_file(command, files):
    d, events, history = files
    if command == "simulate":
        proc = _cli("simulate", "--impressions", "1000", "-o", FULL)
    elif command == "offline":
        proc = _cli("offline", str(events), "--split-at", "0.6", "--passes", "1", "--json", FULL,
                    "--set", "time.attribution_window=10s", "--set", "time.horizon=10s")
    elif command == "report":
        proc = _cli("report", str(history), "-o", FULL)
    elif command == "run-summary":
        proc = _run(files, "--summary-json", FULL)
    else:
        proc = _run(files, "--history", FULL, "--report-every", "0.01")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert f"{FULL}: No space left on device" in proc.stderr.strip().splitlines()[-1]


@needs_full
def test_a_full_stdout_is_said_as_such(tmp_path):
    with open(FULL, "w") as full:
        proc = _cli("simulate", "--impressions", "1000", stdout=full)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "stream-lis simulate: stdout: No space left on device" in proc.stderr
