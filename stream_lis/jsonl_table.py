"""A side table (the external probe's dataset, the arms' embeddings) read from a JSON Lines
file: every line goes through the table's own ``update``, and a rejected line is named with
its number and reason, never left out without a word.

>>> apply_lines([b'{"a": 1}', b"", b"oops"], lambda raw: None if raw.startswith(b"{") else "unparseable")
[(3, 'unparseable')]
"""

from __future__ import annotations

import logging
from typing import BinaryIO, Callable, Iterable

from .config import ConfigError

Update = Callable[[bytes], "str | None"]

#: A UTF-8 byte order mark: editors on Windows start files with one, and left in, it makes a
#: file's first record unparseable. Every JSON Lines reader steps over it (``skip_bom``).
BOM = b"\xef\xbb\xbf"


def skip_bom(fh: BinaryIO) -> None:
    """Step over a byte order mark at the start of ``fh`` (a buffered reader: it peeks).

    >>> import io
    >>> fh = io.BufferedReader(io.BytesIO(BOM + b'{"a": 1}'))
    >>> skip_bom(fh); fh.read()
    b'{"a": 1}'
    """
    if fh.peek(len(BOM))[:len(BOM)] == BOM:  # type: ignore[attr-defined]
        fh.read(len(BOM))


def apply_lines(lines: Iterable[bytes], update: Update) -> list[tuple[int, str]]:
    """``update`` every non-blank line; the (line number, reason) of those it rejected."""
    rejected = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            reason = update(line)
            if reason is not None:
                rejected.append((n, reason))
    return rejected


def load_file(path: str, key: str, update: Update, log: logging.Logger, loaded: Callable[[], str]) -> list[tuple[int, str]]:
    """``apply_lines`` on the file the config ``key`` names; an unreadable file is a config
    error, rejected lines a warning (the first ten named) that ends with ``loaded()``, and so
    is a file without a record (a truncated export: the table is empty, which the figures
    would only show as a missing LIS or AIS)."""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    records = 0

    def counted(raw: bytes) -> str | None:
        nonlocal records
        records += 1
        return update(raw)

    with fh:
        skip_bom(fh)
        rejected = apply_lines(fh, counted)
    if not records:
        log.warning("%s %s: the file has no record; %s", key, path, loaded())
    if rejected:
        shown = ", ".join(f"line {n}: {r}" for n, r in rejected[:10])
        more = f" and {len(rejected) - 10} more" if len(rejected) > 10 else ""
        log.warning("%s %s: %d record(s) rejected and left out (%s%s); %s", key, path, len(rejected), shown, more,
                    loaded())
    return rejected
