"""Record sources for the embedded runtime: JSON Lines files or stdin, and the simulator.

Lines are read with a length bound: a runaway line (a huge payload) is not read into
memory whole; its first ``max_bytes + 1`` bytes are yielded (so validation rejects it as
``oversized`` with a prefix to look at) and the rest is skipped.

>>> import io
>>> list(iter_lines(io.BytesIO(b'{"a":1}\\n\\n' + b'x' * 20 + b'\\n{"b":2}\\n'), max_bytes=10))
[b'{"a":1}', b'xxxxxxxxxxx', b'{"b":2}']
"""

from __future__ import annotations

import sys
from typing import BinaryIO, Callable, Iterator

import msgspec

from ..simulator import Simulator, SimulatorConfig


def iter_lines(fh: BinaryIO, max_bytes: int) -> Iterator[bytes]:
    """Non-blank lines without their newline; oversized lines cut to ``max_bytes + 1``."""
    limit = max_bytes + 2  # +1 to detect "too long", +1 for the newline
    while True:
        line = fh.readline(limit)
        if not line:
            return
        if not line.endswith(b"\n") and len(line) == limit:
            rest = line
            while rest and not rest.endswith(b"\n"):
                rest = fh.readline(1 << 20)
            yield line[: max_bytes + 1]
            continue
        line = line.strip()
        if line:
            yield line


def file_records(path: str, max_bytes: int) -> Iterator[bytes]:
    """Records of a JSON Lines file, or of stdin for ``-``."""
    if path == "-":
        yield from iter_lines(sys.stdin.buffer, max_bytes)
        return
    with open(path, "rb") as fh:
        yield from iter_lines(fh, max_bytes)


def simulator_records(cfg: SimulatorConfig, on_item: Callable[[str, list[float]], None] | None = None) -> Iterator[bytes]:
    """The simulator's events, serialised as they would arrive on the wire."""
    enc = msgspec.json.Encoder().encode
    for ev in Simulator(cfg, on_item).events():
        yield enc(ev)
