"""A JSON Lines file saved by an editor that writes a UTF-8 byte order mark: its first record
is read like the others, by every reader of files (``run --input``, stdin, side tables, the
``preferences`` / ``embeddings`` publishers), rather than dead-lettered as unparseable."""

from __future__ import annotations

import json
import subprocess
import sys

from stream_lis.jsonl_table import BOM
from stream_lis.probes.external import ExternalProbe

CLI = [sys.executable, "-m", "stream_lis"]


def _events() -> bytes:
    imp = {"type": "impression", "impression_id": "a", "ts": 1_000, "user_id": "u", "item_id": "i",
           "experiment": "e", "arm": "c"}
    return (json.dumps(imp) + "\n" + json.dumps({"type": "click", "impression_id": "a", "ts": 1_500}) + "\n").encode()


def _run(tmp_path, *args: str, stdin: bytes | None = None) -> dict:
    summary = tmp_path / "s.json"
    proc = subprocess.run([*CLI, "run", *args, "--port", "-1", "--quiet", "--summary-json", str(summary),
                           "--dead-letters", str(tmp_path / "dl.jsonl")], input=stdin, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return json.loads(summary.read_text())


def test_run_input_file_with_a_bom_counts_its_first_record(tmp_path):
    path = tmp_path / "ev.jsonl"
    path.write_bytes(BOM + _events())
    doc = _run(tmp_path, "--input", str(path))
    assert doc["counters"]["invalid"] == {} and doc["counters"]["records"] == 2, doc["counters"]
    assert doc["counters"]["click_joins"] == {"attributed": 1}, doc["counters"]
    assert not (tmp_path / "dl.jsonl").exists()


def test_stdin_with_a_bom_counts_its_first_record(tmp_path):
    doc = _run(tmp_path, "--input", "-", stdin=BOM + _events())
    assert doc["counters"]["invalid"] == {} and doc["counters"]["click_joins"] == {"attributed": 1}, doc["counters"]


def test_side_table_file_with_a_bom_loads_its_first_line(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_bytes(BOM + b'{"item_id": "i1", "vector": [1.0, 0.0]}\n{"item_id": "i2", "vector": [0.0, 1.0]}\n')
    probe = ExternalProbe.from_file(str(path))
    assert probe.rejected == [] and probe.n_items == 2
