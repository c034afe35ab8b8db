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
    lines = _Lines(max_bytes, blanks)
    while chunk := fh.read(_CHUNK):
        yield from lines.feed(chunk)
    yield from lines.end()


#: Bytes read at a time: a runaway line is never held whole (``_Lines`` keeps its first bytes).
_CHUNK = 1 << 16


class _Lines:
    """``iter_lines``'s rules over a byte stream fed a chunk at a time, so a file and stdin
    (``FdLines``) split records alike: a line is stripped of surrounding whitespace, a blank
    one is skipped (noted in ``blanks``), and one still longer than ``max_bytes + 1`` is cut
    to that (validation rejects it as oversized) while its rest is skipped as it arrives.

    Whitespace around a record is not part of it, however long: a line of 100,000 spaces is
    blank, and a record followed by them is the record. Neither is held whole meanwhile (the
    leading run is dropped as it arrives, the trailing one kept to one byte past the limit)."""

    def __init__(self, max_bytes: int, blanks: list[int] | None) -> None:
        self.limit, self.blanks = max_bytes + 1, blanks
        self.buf, self.skipping, self.n = b"", False, 0

    def tail(self) -> bytes:
        """What follows the last newline (``b""`` while an oversized line's rest is skipped)."""
        return b"" if self.skipping else self.buf

    def feed(self, chunk: bytes) -> list[bytes]:
        *lines, self.buf = (self.buf + chunk).split(b"\n")
        out = []
        for line in lines:
            if self.skipping:  # the rest of an oversized line
                self.skipping = False
            else:
                self._line(line, out)
        if self.skipping:
            if len(self.buf) > self.limit:  # still no newline: more of the oversized line's rest
                self.buf = b""
            return out
        # A line's start: leading whitespace is not the record's (one byte of it is kept: an
        # unterminated whitespace line at the end is a blank line).
        self.buf = self.buf.lstrip() or self.buf[:1]
        if len(self.buf) > self.limit:
            if len(self.buf.rstrip()) > self.limit:  # the record itself is oversized
                out.append(self.buf[:self.limit])
                self.n += 1
                self.skipping = True
                self.buf = b""
            else:  # trailing whitespace so far: what follows decides, one byte past the limit tells
                self.buf = self.buf[:self.limit + 1]
        return out

    def end(self) -> list[bytes]:
        """The last line, when the input ends without a newline."""
        out: list[bytes] = []
        if not self.skipping and self.buf:
            self._line(self.buf, out)
        self.buf, self.skipping = b"", False
        return out

    def _line(self, line: bytes, out: list[bytes]) -> None:
        line = line.strip()
        if len(line) > self.limit:
            out.append(line[:self.limit])
            self.n += 1
        elif line:
            out.append(line)
            self.n += 1
        elif self.blanks is not None:
            self.blanks.append(self.n)


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

    def __init__(self, fd: int, max_bytes: int, blanks: list[int] | None = None, chunk: int = _CHUNK) -> None:
        self.fd, self.max_bytes, self.blanks, self.chunk = fd, max_bytes, blanks, chunk
        self._tail = b""

    def unterminated(self) -> bytes:
        """The bytes read after the last newline, stripped (``b""``: none, or the rest of an
        oversized line, whose first bytes went as a record already). One attribute read: the
        reader's thread may be blocked in a read meanwhile."""
        return self._tail.strip()

    def __iter__(self) -> Iterator[bytes]:
        lines = _Lines(self.max_bytes, self.blanks)
        head = b""  # the first bytes, until they cannot be a byte order mark cut by the pipe
        while chunk := os.read(self.fd, self.chunk):
            if head is not None:
                head += chunk
                if len(head) < len(BOM) and BOM.startswith(head):
                    continue
                chunk, head = head[len(BOM):] if head.startswith(BOM) else head, None
            self._tail = b""  # until every complete line before it is out
            yield from lines.feed(chunk)
            self._tail = lines.tail()
        self._tail = b""
        yield from lines.feed(head) if head else ()
        yield from lines.end()


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
