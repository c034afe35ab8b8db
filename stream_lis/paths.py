"""The command line's checks of the files it is given, made before any work.

A run can take minutes; a results file that cannot be written must be said at start, not as a
traceback after the run, with its figures lost. ``'-'`` (stdin / stdout) always passes.

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
'cannot write --summary-json .../a.jsonl: it is --input (the run would overwrite it)'
>>> first_problem([], [("--history", "h.jsonl"), ("--summary-json", "h.jsonl")])
'cannot write --summary-json h.jsonl: it is --history (the run would overwrite it)'
"""

from __future__ import annotations

import os
from typing import Sequence

__all__ = ["first_problem", "unreadable", "unwritable"]


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
    be read or written (flag ``""`` for a positional argument; path None: not given), or None."""
    for (flag, path), check, verb in [*((f, unreadable, "read") for f in inputs),
                                      *((f, unwritable, "write") for f in outputs)]:
        why = check(path) if path is not None else None
        if why is not None:
            return f"cannot {verb} {flag + ' ' if flag else ''}{path}: {why}"
    # An output that is also an input, or another output, would overwrite it: the input lost, or
    # one result file in place of two, with nothing said.
    seen: dict[str, str] = {}
    for role, (flag, path) in [*(("in", f) for f in inputs), *(("out", f) for f in outputs)]:
        if path is None or path == "-":
            continue
        key = os.path.realpath(path)
        if role == "out" and key in seen:
            return f"cannot write {flag + ' ' if flag else ''}{path}: it is {seen[key]} (the run would overwrite it)"
        seen.setdefault(key, flag or "an input")
    return None
