"""A dead letter is one line, whatever its record holds.

JSON lets U+2028, U+2029 and NEL (U+0085) stand raw inside a string, and msgspec writes them
so; a JSON Lines reader is fine with that, but Python's ``str.splitlines``, editors and some
log shippers split the letter there, and a producer's record can hold anything. They are
escaped; the record comes back byte for byte.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stream_lis.deadletter import encode_dead_letter
from stream_lis.events import Invalid

BREAKS = ["\u2028", "\u2029", "\u0085"]


@pytest.mark.parametrize("ch", BREAKS, ids=["U+2028", "U+2029", "NEL"])
def test_a_line_break_in_a_record_or_its_detail_is_escaped(ch):
    raw = f'{{"type":"impression","impression_id":"a{ch}b","note":"é€{ch}"}}'.encode()
    line = encode_dead_letter(Invalid("missing_field", f"detail{ch}", raw), "input:1")
    assert len(line.decode().splitlines()) == 1
    back = json.loads(line)
    assert back["raw"].encode() == raw and back["detail"] == f"detail{ch}"


def test_a_run_writes_such_a_record_as_one_dead_letter_line(tmp_path):
    bad = '{"type":"click","impression_id":"x\u2028y"}'  # no ts: missing_field
    good = '{"type":"impression","impression_id":"i","ts":1,"user_id":"u","item_id":"a","experiment":"e","arm":"c"}'
    src = tmp_path / "events.jsonl"
    src.write_text(good + "\n" + bad + "\n", encoding="utf-8")
    out = tmp_path / "dead.jsonl"
    proc = subprocess.run([sys.executable, "-m", "stream_lis", "run", "--input", str(src), "--dead-letters", str(out),
                           "--port", "-1", "--quiet"], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr  # (1: too little to evaluate)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1, lines
    assert json.loads(lines[0])["raw"] == bad
