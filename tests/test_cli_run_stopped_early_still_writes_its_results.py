"""A run stopped before its input ends still writes what it computed: Ctrl-C or SIGTERM on a
live stdin run (how such a run normally ends), and a table nobody reads (stdout closed by
`| head`), end with the summary and the history's final line written. A run whose every
record was rejected says so and fails."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from _helpers import sim_records
from stream_lis.config import load_config
from stream_lis.engine import Engine

CLI = [sys.executable, "-m", "stream_lis"]
FAST = ["--set", "time.attribution_window=10s", "--set", "time.horizon=10s"]


def _accepted(records: list[bytes]) -> int:
    """How many of the records the run accepts (what its history counts)."""
    eng = Engine(load_config(None, {"time.attribution_window": "10s", "time.horizon": "10s"}))
    eng.process_records(records)
    return eng.counters.records


def _wait_for_records(history, n: int, timeout: float) -> None:
    """Until a live-table line of the history counts ``n`` accepted records: the run has read
    them all (a signal sooner stops it with records still in the pipe, as it should)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        lines = history.read_text().splitlines() if history.exists() else []
        if lines and json.loads(lines[-1]).get("records", 0) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"no history line with {n} records after {timeout} s: {lines[-1:] if lines else ''}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_a_live_run_with_its_results_written(sig, tmp_path):
    summary, history, err = tmp_path / "s.json", tmp_path / "h.jsonl", tmp_path / "err.txt"
    with open(err, "w") as fh:
        proc = subprocess.Popen([*CLI, "run", "--input", "-", "--port", "-1", "--report-every", "0.5",
                                 "--summary-json", str(summary), "--history", str(history),
                                 "--dead-letters", str(tmp_path / "d.jsonl"), *FAST],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=fh)
    records = sim_records(3_000, seed=3)
    proc.stdin.write(b"\n".join(records) + b"\n")
    proc.stdin.flush()  # and the input stays open: a live stream with no end
    try:
        _wait_for_records(history, _accepted(records), 60)  # the run is under way and has read them all
        proc.send_signal(sig)
        proc.wait(timeout=60)  # not communicate(): it would close stdin, ending the input
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdin.close()
    name = signal.Signals(sig).name
    assert proc.returncode == 0, err.read_text()
    assert "Traceback" not in err.read_text()
    assert f"final ({name}: {len(records):,} records" in out.decode()
    doc = json.loads(summary.read_text())
    assert doc["run"]["stopped_by"] == name and doc["run"]["records"] == len(records)
    assert doc["counters"]["records"] > 0 and doc["arms"]
    last = json.loads(history.read_text().splitlines()[-1])
    assert last["final"] is True and last["stopped_by"] == name


def test_a_signal_mid_stream_counts_every_record_the_run_took_off_its_input(tmp_path):
    """Stopped while a producer is still writing, a live run evaluates the records it had read
    ahead (up to 20,000 queued by its reader): only what is still in the pipe stays unread."""
    import threading

    records = sim_records(60_000, seed=3)
    summary, err = tmp_path / "s.json", tmp_path / "err.txt"
    with open(err, "w") as fh:
        proc = subprocess.Popen([*CLI, "run", "--input", "-", "--port", "-1", "-q", "--summary-json", str(summary),
                                 "--dead-letters", str(tmp_path / "d.jsonl"), *FAST],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=fh)
    written, stop = 0, threading.Event()

    def produce() -> None:
        nonlocal written
        try:
            for rec in records:
                if stop.is_set():
                    return
                proc.stdin.write(rec + b"\n")
                written += 1
        except (BrokenPipeError, ValueError):
            pass

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    try:
        end = time.monotonic() + 60
        while written < 40_000 and time.monotonic() < end:  # the run is busy, its reader ahead of it
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        stop.set()
        t.join(timeout=10)
        proc.stdout.read()
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
    assert proc.returncode == 0, err.read_text()
    read = json.loads(summary.read_text())["run"]["records"]
    in_pipe = 65_536 // min(map(len, records)) + 2  # what a pipe holds, and a line half read
    assert written - in_pipe <= read <= written, (written, read)


def test_the_result_files_do_not_depend_on_stdout_being_read(tmp_path):
    events = tmp_path / "ev.jsonl"
    events.write_bytes(b"\n".join(sim_records(2_000, seed=4)) + b"\n")
    summary = tmp_path / "s.json"
    run = subprocess.Popen([*CLI, "run", "--input", str(events), "--port", "-1", "-q", "--summary-json", str(summary),
                            "--dead-letters", str(tmp_path / "d.jsonl"), *FAST],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run.stdout.close()  # `| head -0`: nobody reads the table
    _, err = run.communicate(timeout=120)
    assert b"Traceback" not in err, err
    doc = json.loads(summary.read_text())
    assert doc["run"]["stopped_by"] == "end of input" and doc["arms"]


def test_a_run_whose_every_record_is_rejected_fails(tmp_path):
    events = tmp_path / "ev.jsonl"
    events.write_bytes(b"\n".join(sim_records(500, seed=5)) + b"\n")
    # the config declares an arm the input does not have: every impression is an unknown arm,
    # and every click then an orphan (not a rejection): make the input impressions only
    lines = [r for r in events.read_bytes().splitlines() if b'"impression"' in r]
    events.write_bytes(b"\n".join(lines) + b"\n")
    proc = subprocess.run([*CLI, "run", "--input", str(events), "--port", "-1", "-q",
                           "--dead-letters", str(tmp_path / "d.jsonl"),
                           "--set", 'experiments=[{"name": "lis_demo", "arms": ["ctrl"]}]'],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert f"every one of the {len(lines):,} input records was rejected" in proc.stderr
    assert "Traceback" not in proc.stderr
    # one accepted record is enough to pass
    ok = subprocess.run([*CLI, "run", "--input", str(events), "--port", "-1", "-q",
                         "--dead-letters", str(tmp_path / "d2.jsonl")], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
