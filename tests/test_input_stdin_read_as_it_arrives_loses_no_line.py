"""Stdin is read as its bytes arrive (``FdLines``), with the same records as a file of the
same bytes (both checked against the rules written out independently), and a run stopped by a signal takes the last line its producer has not ended
with a newline yet: it used to stay in a read buffer, neither evaluated nor dead-lettered."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

from _helpers import sim_records
from stream_lis.jsonl_table import BOM
from stream_lis.runtime.sources import FdLines, iter_lines

CLI = [sys.executable, "-m", "stream_lis"]


def _fd_lines(data: bytes, max_bytes: int, chunk: int) -> tuple[list[bytes], list[int]]:
    r, w = os.pipe()
    feeder = threading.Thread(target=lambda: (os.write(w, data), os.close(w)), daemon=True)
    feeder.start()
    blanks: list[int] = []
    out = list(FdLines(r, max_bytes, blanks, chunk=chunk))
    feeder.join()
    os.close(r)
    return out, blanks


def _spec(data: bytes, max_bytes: int) -> tuple[list[bytes], list[int]]:
    """The records of ``data`` by the rules alone, written out once more, independently of
    the readers: a leading byte order mark dropped; each line stripped, a blank one skipped
    (its place noted), one still over ``max_bytes + 1`` cut to that."""
    lines = (data[len(BOM):] if data.startswith(BOM) else data).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # what the final newline ends
    out, blanks = [], []
    for line in lines:
        line = line.strip()
        if len(line) > max_bytes + 1:
            out.append(line[:max_bytes + 1])
        elif line:
            out.append(line)
        else:
            blanks.append(len(out))
    return out, blanks


def test_the_same_records_and_blank_lines_as_a_file_whatever_the_reads():
    rng = random.Random(5)
    pieces = [b'{"a":1}', b"", b"   ", b"x" * 9, b"y" * 10, b"z" * 11, b"w" * 40, b" \t{\"b\":2}\r", b"\r",
              # whitespace runs longer than the limit: around a record, alone, and inside one
              b" " * 40, b"\t" * 25 + b'{"c":3}', b"y" * 10 + b" " * 30, b"q" * 5 + b" " * 30 + b"r", b" " * 15 + b"s" * 12]
    for case in range(200):
        lines = [rng.choice(pieces) for _ in range(rng.randint(0, 12))]
        data = (BOM if case % 3 == 0 else b"") + b"\n".join(lines) + (b"\n" if case % 2 else b"")
        expected = _spec(data, 10)
        blanks_file: list[int] = []
        fh = io.BufferedReader(io.BytesIO(data))
        if data.startswith(BOM):
            fh.read(len(BOM))
        assert (list(iter_lines(fh, 10, blanks_file)), blanks_file) == expected, data
        for chunk in (1, 2, 5, 64):
            assert _fd_lines(data, 10, chunk) == expected, (data, chunk)


def test_the_unterminated_line_is_what_follows_the_last_newline_while_the_reader_waits():
    r, w = os.pipe()
    lines = FdLines(r, max_bytes=20)
    got: list[bytes] = []
    t = threading.Thread(target=lambda: got.extend(lines), daemon=True)
    t.start()
    try:
        os.write(w, b'{"a":1}\n{"b"')
        deadline = time.monotonic() + 10
        while lines.unterminated() != b'{"b"' and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (got, lines.unterminated()) == ([b'{"a":1}'], b'{"b"')
        os.write(w, b':2}\n' + b"q" * 30)  # the rest of it, then an oversized line's start
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == [b'{"a":1}', b'{"b":2}', b"q" * 21] and lines.unterminated() == b""  # cut, sent already
    finally:
        os.close(w)
        t.join(10)
        os.close(r)
    assert got == [b'{"a":1}', b'{"b":2}', b"q" * 21]


def test_a_signal_takes_the_last_line_that_has_no_newline_yet(tmp_path):
    records = sim_records(2_000, seed=4)
    summary, letters, err, history = tmp_path / "s.json", tmp_path / "d.jsonl", tmp_path / "err.txt", tmp_path / "h.jsonl"
    with open(err, "w") as fh:
        proc = subprocess.Popen([*CLI, "run", "--input", "-", "--port", "-1", "-q", "--summary-json", str(summary),
                                 "--dead-letters", str(letters), "--history", str(history), "--report-every", "0.3",
                                 "--set", "time.attribution_window=10s",
                                 "--set", "time.horizon=10s"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=fh)
    half = records[-1][: len(records[-1]) // 2]  # a producer stopped half-way through a record
    try:
        proc.stdin.write(b"\n".join(records[:-1]) + b"\n" + half)
        proc.stdin.flush()  # and the input stays open
        deadline = time.monotonic() + 60  # the run is under way (its signal handler in place)
        while not (history.exists() and history.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # and has read what there is: it waits for the rest of the line
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdin.close()
    assert proc.returncode == 0, err.read_text()
    run = json.loads(summary.read_text())["run"]
    assert run["records"] == len(records), run  # every line, the unterminated one too
    dead = [json.loads(line) for line in letters.read_text().splitlines()]
    cut = [d for d in dead if d["reason"] == "unparseable"]
    assert len(cut) == 1 and cut[0]["source"] == f"stdin:{len(records)}", dead
