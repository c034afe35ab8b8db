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

import os
import sys
from bisect import bisect_right
from typing import BinaryIO, Callable, Iterable, Iterator

import msgspec

from ..jsonl_table import BOM, skip_bom
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


class FdLines:
    """``iter_lines`` of a file descriptor read as its bytes arrive (stdin), keeping what
    follows the last newline where the caller can take it (``unterminated``).

    Why not a buffered reader: a live run stopped by a signal while its producer is still
    attached would lose a last line that has no newline yet inside the reader's buffer (its
    reader thread blocked in a read, holding the buffer's lock); here the run takes it and
    evaluates it, or dead-letters it as what it is (half a record: ``unparseable``). And the
    interpreter's shutdown flushes ``sys.stdin``'s buffer, which would abort on that lock.

    >>> r, w = os.pipe()
    >>> _ = os.write(w, BOM + b'{"a":1}\\n\\n' + b'x' * 20 + b'\\n{"b":2}\\n{"c"')
    >>> os.close(w)
    >>> list(FdLines(r, max_bytes=10))  # as iter_lines: at the end of the input, the last line counts
    [b'{"a":1}', b'xxxxxxxxxxx', b'{"b":2}', b'{"c"']
    >>> os.close(r)

    While the reader waits for more input after ``{"b":2}``, ``unterminated()`` is ``b'{"c"'``
    (tests/test_input_stdin_read_as_it_arrives_loses_no_line.py).
    """

    def __init__(self, fd: int, max_bytes: int, blanks: list[int] | None = None, chunk: int = 1 << 16) -> None:
        self.fd, self.max_bytes, self.blanks, self.chunk = fd, max_bytes, blanks, chunk
        self._tail = b""

    def unterminated(self) -> bytes:
        """The bytes read after the last newline, stripped (``b""``: none, or the rest of an
        oversized line, whose first bytes went as a record already). One attribute read: the
        reader's thread may be blocked in a read meanwhile."""
        return self._tail.strip()

    def __iter__(self) -> Iterator[bytes]:
        limit = self.max_bytes + 1  # a longer line is cut to this (validation rejects it)
        blanks = self.blanks
        buf, skipping, n, start = b"", False, 0, True
        while True:
            chunk = os.read(self.fd, self.chunk)
            if not chunk:
                break
            self._tail = b""  # until every complete line before it is out
            buf += chunk
            if start:
                if len(buf) < len(BOM) and BOM.startswith(buf):
                    continue  # perhaps a mark, cut by the pipe
                if buf.startswith(BOM):
                    buf = buf[len(BOM):]
                start = False
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if skipping:  # the rest of an oversized line
                    skipping = False
                    continue
                if len(line) > limit:
                    yield line[:limit]
                    n += 1
                    continue
                line = line.strip()
                if line:
                    yield line
                    n += 1
                elif blanks is not None:
                    blanks.append(n)
            if len(buf) > limit:
                if not skipping:
                    yield buf[:limit]
                    n += 1
                    skipping = True
                buf = b""  # no newline in it: all of it is the oversized line's
            self._tail = b"" if skipping else buf
        self._tail = b""
        if skipping:
            return
        last = buf if len(buf) > limit else buf.strip()
        if last:
            yield last[:limit]
        elif buf and blanks is not None:
            blanks.append(n)


def file_records(path: str, max_bytes: int, blanks: list[int] | None = None) -> Iterable[bytes]:
    """Records of a JSON Lines file, or of stdin for ``-`` (``blanks``: see ``iter_lines``).
    Stdin's is an ``FdLines``: a run stopped early takes its ``unterminated`` last line."""
    if path == "-":
        return FdLines(sys.stdin.fileno(), max_bytes, blanks)
    return _path_records(path, max_bytes, blanks)


def _path_records(path: str, max_bytes: int, blanks: list[int] | None) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        skip_bom(fh)
        yield from iter_lines(fh, max_bytes, blanks)


def numbered_file_records(path: str, max_bytes: int) -> tuple[Iterable[bytes], "LineNumbers"]:
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
