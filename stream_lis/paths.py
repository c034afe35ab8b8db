"""The command line's checks of the files it is given, made before any work.

A run can take minutes; a results file that cannot be written must be said at start, not as a
traceback after the run, with its figures lost. ``'-'`` (stdin / stdout) passes, once: two
outputs on stdout would be interleaved into neither format. ``output`` opens a results file
('-': stdout) so that a write error the checks could not foresee (a full disk) names its path.

>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> unwritable(os.path.join(d, "out.json")) is None, unwritable(d)
(True, 'is a directory')
>>> unwritable(os.path.join(d, "missing", "out.json")).startswith("no such directory")
True
>>> unreadable(d), unreadable(os.path.join(d, "nope.jsonl"))
('is a directory', 'no such file')
>>> first_problem([("--input", "-")], [("-o", d)])
'cannot write -o ...: is a directory'
>>> a = os.path.join(d, "a.jsonl"); open(a, "w").close()
>>> first_problem([("--input", a)], [("--summary-json", os.path.join(d, ".", "a.jsonl"))])
'cannot write --summary-json .../a.jsonl: it is --input (it would be overwritten)'
>>> first_problem([], [("--history", "h.jsonl"), ("--summary-json", "h.jsonl")])
'cannot write --summary-json h.jsonl: it is --history (it would be overwritten)'
>>> first_problem([("", a)], [("--output", "r.html"), ("--save-figure lis_ais=", a)])
'cannot write --save-figure lis_ais=.../a.jsonl: it is an input (it would be overwritten)'
>>> first_problem([("--input", "-")], [("--summary-json", "-"), ("--history", "-")])
'cannot write --history to stdout (-): --summary-json already goes there'
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import IO, Any, Iterator, Sequence

__all__ = ["close_output", "first_problem", "named", "open_output", "output", "unreadable", "unwritable"]


def unreadable(path: str) -> str | None:
    """Why ``path`` cannot be read as an input file (None: it can)."""
    if path == "-":
        return None
    if not os.path.exists(path):
        return "no such file"
    if os.path.isdir(path):
        return "is a directory"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def unwritable(path: str) -> str | None:
    """Why a file cannot be written (or appended to) at ``path`` (None: it can)."""
    if path == "-":
        return None
    if os.path.isdir(path):
        return "is a directory"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f"no such directory: {parent}"
    if not os.access(parent if not os.path.exists(path) else path, os.W_OK):
        return "permission denied"
    return None


def first_problem(inputs: Sequence[tuple[str, str | None]] = (),
                  outputs: Sequence[tuple[str, str | None]] = ()) -> str | None:
    """What is wrong with the first of a command's (flag, path) inputs and outputs that cannot
    be read or written (flag ``""`` for a positional argument, one ending in ``=`` for
    ``NAME=PATH``; path None: not given), or None."""
    for (flag, path), check, verb in [*((f, unreadable, "read") for f in inputs),
                                      *((f, unwritable, "write") for f in outputs)]:
        why = check(path) if path is not None else None
        if why is not None:
            return f"cannot {verb} {_said(flag, path)}: {why}"
    # An output that is also an input, or another output, would overwrite it: the input lost, or
    # one result file in place of two, with nothing said.
    seen: dict[str, str] = {}
    stdout: str | None = None
    for role, (flag, path) in [*(("in", f) for f in inputs), *(("out", f) for f in outputs)]:
        if path is None:
            continue
        if path == "-":
            if role == "out" and stdout is not None:
                return f"cannot write {flag or 'the output'} to stdout (-): {stdout} already goes there"
            stdout = stdout or (flag if role == "out" else None)
            continue
        key = os.path.realpath(path)
        if role == "out" and key in seen:
            return f"cannot write {_said(flag, path)}: it is {seen[key]} (it would be overwritten)"
        seen.setdefault(key, flag.rstrip("=") or "an input")
    return None


def _said(flag: str, path: str) -> str:
    """A (flag, path) as it was typed."""
    return f"{flag}{path}" if flag.endswith("=") else f"{flag} {path}" if flag else path


def named(exc: OSError, path: str) -> OSError:
    """``exc`` naming ``path`` (``'-'``: stdout): a write error the checks at start could not
    foresee (a full disk, a device) said in one line with its file, not as a nameless one."""
    if exc.filename is not None or isinstance(exc, BrokenPipeError):  # `| head`: not the file's fault
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), "stdout" if path == "-" else path)


def open_output(path: str, mode: str = "wb") -> IO[Any]:
    """``path`` opened for writing (``'-'``: stdout, text or bytes as ``mode`` says); close it
    with ``close_output``, which leaves stdout open."""
    if path == "-":
        return sys.stdout.buffer if "b" in mode else sys.stdout
    return open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"}))


def close_output(fh: IO[Any]) -> None:
    """Close what ``open_output`` opened: stdout is flushed, never closed."""
    if fh is sys.stdout or fh is getattr(sys.stdout, "buffer", None):  # a StringIO stdout has none
        fh.flush()
    else:
        fh.close()


@contextmanager
def output(path: str, mode: str = "wb") -> Iterator[IO[Any]]:
    """``path`` opened for writing (``'-'``: stdout, flushed, not closed); write errors come
    out ``named``."""
    try:
        fh = open_output(path, mode)
        try:
            yield fh
        finally:
            close_output(fh)
    except OSError as exc:
        raise named(exc, path) from None
