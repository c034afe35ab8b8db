"""Dead letters: every rejected record, with its reason and original bytes, somewhere durable.

The core only counts rejections and hands them to a sink; sinks here write JSON Lines files
(the embedded runtime); the Kafka runtime has a topic sink with the same record shape.

>>> import io
>>> from stream_lis.events import Invalid
>>> buf = io.BytesIO()
>>> DeadLetterWriter(buf).write(Invalid("unparseable", "truncated", b'{"type"'), "input:3")
>>> buf.getvalue()
b'{"reason":"unparseable","detail":"truncated","source":"input:3","raw":"{\\\\"type\\\\""}\\n'
"""

from __future__ import annotations

import base64
from typing import BinaryIO

import msgspec

from .events import Invalid
from .paths import close_output, named, open_output


class DeadLetter(msgspec.Struct, omit_defaults=True):
    """The record written for each rejected input; ``raw_base64`` when it was not UTF-8."""

    reason: str
    detail: str
    source: str
    raw: str | None = None
    raw_base64: str | None = None


def to_dead_letter(inv: Invalid, source: str) -> DeadLetter:
    try:
        return DeadLetter(inv.reason, inv.detail, source, raw=inv.raw.decode("utf-8"))
    except UnicodeDecodeError:
        return DeadLetter(inv.reason, inv.detail, source, raw_base64=base64.b64encode(inv.raw).decode())


_encoder = msgspec.json.Encoder()


def dead_letter_key(source: str) -> bytes:
    """The dead-letter topic's key for a record from ``source`` (``topic/partition@offset``):
    its input partition, so letters spread over the topic's partitions as the input does and
    stay in input order within each.

    >>> dead_letter_key("impressions/3@1207"), dead_letter_key("preferences/0@5"), dead_letter_key("input:3")
    (b'impressions/3', b'preferences/0', b'input:3')
    """
    return source.rsplit("@", 1)[0].encode()


#: Characters that JSON leaves raw in a string but that split a line for readers other than
#: a JSON Lines one (Python's ``str.splitlines``, some editors and log shippers), as their
#: UTF-8 bytes and a JSON escape. A dead letter holds whatever bytes a producer sent.
_LINE_BREAKS = ((b"\xc2\x85", b"\\u0085"), (b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


def encode_dead_letter(inv: Invalid, source: str) -> bytes:
    """One dead letter as a line of JSON: the line breaks JSON allows inside strings (NEL,
    U+2028, U+2029) escaped, so a letter is one line for every reader."""
    out = _encoder.encode(to_dead_letter(inv, source))
    if b"\xc2\x85" in out or b"\xe2\x80" in out:
        for raw, escaped in _LINE_BREAKS:
            out = out.replace(raw, escaped)
    return out


class DeadLetterWriter:
    """Appends dead letters as JSON Lines to a binary stream; counts what it wrote."""

    def __init__(self, fh: BinaryIO | None, path: str | None = None) -> None:
        self.fh = fh
        self.path = path
        self.written = 0

    @classmethod
    def open(cls, path: str) -> "DeadLetterWriter":
        """A writer appending to ``path`` (``'-'``: stdout), which is opened at the first letter: a run that
        rejects nothing, or fails to start, leaves no file behind (the caller checks that it
        can be written before any work)."""
        return cls(None, path)

    def write(self, inv: Invalid, source: str) -> None:
        try:
            if self.fh is None:
                self.fh = open_output(self.path, "ab")  # type: ignore[arg-type]
            self.fh.write(encode_dead_letter(inv, source) + b"\n")
        except OSError as exc:
            raise named(exc, self.path or "dead letters") from None
        self.written += 1

    def flush(self) -> None:
        if self.fh is not None:
            try:
                self.fh.flush()
            except OSError as exc:
                raise named(exc, self.path or "dead letters") from None

    def close(self) -> None:
        if self.fh is not None:
            try:
                close_output(self.fh)
            except OSError as exc:
                raise named(exc, self.path or "dead letters") from None
