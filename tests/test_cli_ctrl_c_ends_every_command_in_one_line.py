"""Ctrl-C (SIGINT) ends every command with a line, never a traceback: `report --scrape` stops
scraping and still writes the report from the samples taken (exit 1 when there is none);
`simulate -o FILE` removes the event log it had begun (a cut-off log would evaluate without a
word) and `offline` stops, both with exit status 130. (`run` has its own test: it stops like
--duration, with every result written.)"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from _helpers import sim_records

CLI = [sys.executable, "-m", "stream_lis"]


def _start(args: list[str], err_path) -> subprocess.Popen:
    # A shell's background job inherits SIGINT ignored; the child gets Ctrl-C as a terminal would.
    with open(err_path, "w") as err:
        return subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=err,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait(cond, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for the command to be at work")
        time.sleep(0.05)


def _interrupt(proc: subprocess.Popen) -> tuple[int, bytes]:
    try:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
        return proc.returncode, out
    finally:
        if proc.poll() is None:
            proc.kill()


def _reading(proc: subprocess.Popen, path) -> bool:
    """Whether ``proc`` has ``path`` open (Linux /proc): past start-up, into the work."""
    try:
        return any(os.readlink(f"/proc/{proc.pid}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{proc.pid}/fd"))
    except OSError:
        return False


def test_simulate_interrupted_removes_its_cut_off_output(tmp_path):
    out, err = tmp_path / "ev.jsonl", tmp_path / "err.txt"
    proc = _start(["simulate", "--impressions", "5000000", "-o", str(out)], err)
    _wait(lambda: out.exists() and out.stat().st_size > 0)
    rc, _ = _interrupt(proc)
    said = err.read_text()
    assert rc == 130 and "Traceback" not in said, said
    assert f"removed the partial {out}" in said and "stream-lis simulate: interrupted" in said
    assert not out.exists()


def test_simulate_terminated_removes_its_cut_off_output_too(tmp_path):
    """SIGTERM (`timeout`, a CI runner, a container stop) cleans up as Ctrl-C does: exit 143."""
    out, err = tmp_path / "ev.jsonl", tmp_path / "err.txt"
    proc = _start(["simulate", "--impressions", "5000000", "-o", str(out)], err)
    _wait(lambda: out.exists() and out.stat().st_size > 0)
    try:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    said = err.read_text()
    assert proc.returncode == 143 and "Traceback" not in said, said
    assert f"removed the partial {out}" in said and "stream-lis simulate: terminated" in said
    assert not out.exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to see the input opened")
def test_offline_interrupted_ends_in_one_line(tmp_path):
    events, err = tmp_path / "ev.jsonl", tmp_path / "err.txt"
    events.write_bytes(b"\n".join(sim_records(60_000, seed=3)) + b"\n")
    proc = _start(["offline", str(events), "--split-at", "0.6", "--json", str(tmp_path / "o.json")], err)
    _wait(lambda: _reading(proc, events) or proc.poll() is not None)
    rc, _ = _interrupt(proc)
    said = err.read_text()
    assert rc == 130 and "Traceback" not in said, said
    assert said.strip().splitlines()[-1] == "stream-lis offline: interrupted"
    assert not (tmp_path / "o.json").exists()


def test_report_scrape_interrupted_reports_the_samples_taken(tmp_path):
    from stream_lis.config import load_config
    from stream_lis.report import load_file
    from stream_lis.runtime.embedded import EmbeddedRuntime

    cfg = load_config(None, {"evaluation.window_size": 1500, "time.horizon": "10m", "time.attribution_window": "5m"})
    rt = EmbeddedRuntime(cfg, port=0, host="127.0.0.1")
    try:
        with rt.lock:
            rt.engine.process_records(sim_records(12_000, seed=11))
        html, saved, err = tmp_path / "live.html", tmp_path / "scraped.jsonl", tmp_path / "err.txt"
        proc = _start(["report", "--scrape", f"http://127.0.0.1:{rt.server.port}", "--every", "0.2", "--samples",
                       "10000", "-o", str(html), "--save-scrape", str(saved)], err)
        _wait(lambda: "scrape 2/10000:" in err.read_text())
        rc, out = _interrupt(proc)
    finally:
        rt.close()
    said = err.read_text()
    assert rc == 0 and "Traceback" not in said, said
    assert "scraping interrupted after" in said
    assert html.exists() and b"report:" in out
    src = load_file(str(saved))
    assert len(src.points) >= 2 and src.final.arms


def test_report_scrape_interrupted_before_any_sample_fails_in_one_line(tmp_path):
    with socket.socket() as closed:  # bound, never listening: every connection is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        html, err = tmp_path / "none.html", tmp_path / "err.txt"
        proc = _start(["report", "--scrape", f"127.0.0.1:{port}", "--every", "0.2", "--samples", "10000",
                       "-o", str(html)], err)
        _wait(lambda: "scrape 1/10000: failed" in err.read_text())
        rc, _ = _interrupt(proc)
    said = err.read_text()
    assert rc == 1 and "Traceback" not in said, said
    assert "interrupted before any sample was scraped" in said.strip().splitlines()[-1]
    assert not html.exists()
