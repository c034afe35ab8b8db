"""Record sources for the embedded runtime: JSON Lines files or stdin, and the simulator.

Lines are read with a length bound: a runaway line (a huge payload) is not read into
memory whole; its first ``max_bytes + 1`` bytes are yielded (so validation rejects it as
``oversized`` with a prefix to look at) and the rest is skipped.

>>> import io
>>> list(iter_lines(io.BytesIO(b'{"a":1}\\n\\n' + b'x' * 20 + b'\\n{"b":2}\\n'), max_bytes=10))
[b'{"a":1}', b'xxxxxxxxxxx', b'{"b":2}']

A dead letter from a file names the record's line (``events.jsonl:1234``): the reader notes
where it skipped blank lines, so record numbers map back to line numbers.

>>> blanks = []
>>> recs = list(iter_lines(io.BytesIO(b'a\\n\\n\\nb\\nc\\n'), 10, blanks))
>>> where = LineNumbers("f.jsonl", blanks)
>>> [(r, where(k)) for k, r in enumerate(recs)]
[(b'a', 'f.jsonl:1'), (b'b', 'f.jsonl:4'), (b'c', 'f.jsonl:5')]
"""

from __future__ import annotations

import sys
from bisect import bisect_right
from typing import BinaryIO, Callable, Iterator

import msgspec

from ..jsonl_table import skip_bom
from ..simulator import Simulator, SimulatorConfig


def iter_lines(fh: BinaryIO, max_bytes: int, blanks: list[int] | None = None) -> Iterator[bytes]:
    """Non-blank lines without their newline; oversized lines cut to ``max_bytes + 1``.
    ``blanks``: gets, for each blank line skipped, the number of records yielded before it."""
    limit = max_bytes + 2  # +1 to detect "too long", +1 for the newline
    n = 0
    while True:
        line = fh.readline(limit)
        if not line:
            return
        if not line.endswith(b"\n") and len(line) == limit:
            rest = line
            while rest and not rest.endswith(b"\n"):
                rest = fh.readline(1 << 20)
            yield line[: max_bytes + 1]
            n += 1
            continue
        line = line.strip()
        if line:
            yield line
            n += 1
        elif blanks is not None:
            blanks.append(n)


def file_records(path: str, max_bytes: int, blanks: list[int] | None = None) -> Iterator[bytes]:
    """Records of a JSON Lines file, or of stdin for ``-`` (``blanks``: see ``iter_lines``)."""
    if path == "-":
        # A reader of its own on fd 0, not sys.stdin.buffer: a live run stopped by a signal
        # leaves its reader thread blocked in a read, holding the buffer's lock, and the
        # interpreter's shutdown flushes sys.stdin's buffer (it would abort on that lock).
        with open(sys.stdin.fileno(), "rb", closefd=False) as fh:
            skip_bom(fh)
            yield from iter_lines(fh, max_bytes, blanks)
        return
    with open(path, "rb") as fh:
        skip_bom(fh)
        yield from iter_lines(fh, max_bytes, blanks)


def numbered_file_records(path: str, max_bytes: int) -> tuple[Iterator[bytes], "LineNumbers"]:
    """``file_records`` and the ``LineNumbers`` naming its records (``stdin:LINE`` for ``-``)."""
    blanks: list[int] = []
    return file_records(path, max_bytes, blanks), LineNumbers("stdin" if path == "-" else path, blanks)


class LineNumbers:
    """Record number (0-based, in reading order) -> ``name:line``, from the blank lines
    ``iter_lines`` noted (read while the file is: a record's line is known once it is read)."""

    def __init__(self, name: str, blanks: list[int]) -> None:
        self.name, self.blanks = name, blanks

    def __call__(self, k: int) -> str:
        return f"{self.name}:{k + 1 + bisect_right(self.blanks, k)}"


def simulator_records(cfg: SimulatorConfig, on_item: Callable[[str, list[float]], None] | None = None) -> Iterator[bytes]:
    """The simulator's events, serialised as they would arrive on the wire."""
    enc = msgspec.json.Encoder().encode
    for ev in Simulator(cfg, on_item).events():
        yield enc(ev)
