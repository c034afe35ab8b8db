"""msgpack for checkpoints taken on one thread while the stage goes on on another.

A checkpoint's large lists (pending impressions, held examples: up to millions of structs)
are encoded on the saver's thread from a frozen copy of the state. msgspec encodes a list in
one call, holding the interpreter lock throughout: about 0.6 s for a million pending
impressions, during which the stage cannot run. ``pack`` encodes such a list ``CHUNK`` items
per call into one buffer and gives the same bytes, so the stage waits at most a chunk.

>>> import msgspec
>>> big = [(k, str(k)) for k in range(CHUNK * 2 + 5)]
>>> pack(big) == msgspec.msgpack.encode(big)
True
>>> pack_array(big, {"a": 1}) == msgspec.msgpack.encode([big, {"a": 1}])
True
"""

from __future__ import annotations

import pickle
from typing import Any

import msgspec

__all__ = ["CHUNK", "Pickled", "pack", "pack_array"]

#: Items per msgpack call for a long list: about 10 ms of pending impressions, the longest
#: the encoding holds the interpreter lock at once.
CHUNK = 20_000

_ENCODER = msgspec.msgpack.Encoder()


def _array_header(n: int) -> bytes:
    """msgpack's header of an array of ``n`` elements."""
    if n < 16:
        return bytes([0x90 | n])
    return b"\xdc" + n.to_bytes(2, "big") if n < 65536 else b"\xdd" + n.to_bytes(4, "big")


def _encode_into(buf: bytearray, obj: Any) -> None:
    if not isinstance(obj, list) or len(obj) <= CHUNK:
        _ENCODER.encode_into(obj, buf, -1)
        return
    buf += _array_header(len(obj))
    for k in range(0, len(obj), CHUNK):
        chunk, start = obj[k:k + CHUNK], len(buf)
        _ENCODER.encode_into(chunk, buf, -1)
        del buf[start:start + len(_array_header(len(chunk)))]  # the chunk's own header


def pack(obj: Any) -> bytes:
    """``msgpack(obj)``, a long list ``CHUNK`` items per call (dicts go in one call:
    building them in chunks cost four times as much)."""
    buf = bytearray()
    _encode_into(buf, obj)
    return bytes(buf)


def pack_array(*parts: Any) -> bytes:
    """``msgpack([*parts])`` (an array-like struct of these fields), each part as ``pack``."""
    buf = bytearray(_array_header(len(parts)))
    for part in parts:
        _encode_into(buf, part)
    return bytes(buf)


class Pickled:
    """An object pickled earlier, at the checkpoint's instant, that unpickles as that object.

    What changes in place (a behaviour log, learners) must be captured while the stage holds
    still; a checkpoint assembled later on the saver's thread carries those bytes as they were.

    >>> p = pickle.loads(pickle.dumps({"log": Pickled(pickle.dumps([1, 2]))}))
    >>> p
    {'log': [1, 2]}
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple:
        return pickle.loads, (self.data,)
