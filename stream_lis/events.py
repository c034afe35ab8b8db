"""Event schema and validation: raw bytes in, a typed event or a precise reason out.

Decoding and type validation happen in one pass in ``msgspec`` (C), which both parses JSON
faster than the stdlib and names the offending field in its error. Checks msgspec cannot
express (finite numbers, sizes, declared arms) follow in plain Python. Nothing here raises on
bad input: ``decode_event`` returns an ``Invalid`` carrying a reason code that is a bounded
Prometheus label value and a human-readable detail.

>>> ev = decode_event(b'{"type":"impression","impression_id":"i1","ts":1000,"user_id":"u",'
...                   b'"item_id":"a","experiment":"e","arm":"control"}')
>>> ev.ts, ev.arm
(1000, 'control')
>>> decode_event(b'{"type":"click","impression_id":"i1"}').reason
'missing_field'
>>> decode_event(b'{"type":"click","impression_id":"i1","ts":"2026-11-26T10:00:00Z"}').ts
1795687200000
>>> decode_event(b'{"type":"impression","impression_id":"i1","ts":1000,"user_id":"u",'
...              b'"item_id":"a","experiment":"e","arm":"control","dense":{"x":1e200}}').reason
'out_of_range'
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Annotated, Sequence, Union

import msgspec
import numpy as np

from .names import unfit

#: Reasons an input record is rejected; each is a value of the ``reason`` metric label.
REASONS = (
    "unparseable",
    "missing_field",
    "wrong_type",
    "non_finite",
    "out_of_range",
    "oversized",
    "unknown_type",
    "unknown_arm",
    "late_event",
    "future_event",
    "duplicate_impression",
    "shed_overload",
)

#: 9999-12-31T23:59:59.999Z: a larger ``ts`` is a unit mistake, and would stall the clock.
MAX_TS_MS = 253_402_300_799_999

AwareDatetime = Annotated[_dt.datetime, msgspec.Meta(tz=True)]
Timestamp = Union[int, AwareDatetime]
Text = Annotated[str, msgspec.Meta(min_length=1)]
#: Largest magnitude of a feature value (``dense``, ``embedding``, a side table's vector).
#: The learners add up squared gradients times squared values: past about 1e154 those
#: overflow, and a single record left a learner's weights NaN for good (its scores, then
#: every AUC of the arm). 1e12 leaves room for any sane feature (counts, prices, durations
#: in ms); a larger value is rejected as ``out_of_range``. Checked by msgspec while decoding.
MAX_ABS_VALUE = 1e12
FeatureValue = Annotated[float, msgspec.Meta(ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE)]


class Impression(msgspec.Struct, tag_field="type", tag="impression", kw_only=True, gc=False):
    """One item shown to one user in one arm; the unit that gets a label."""

    impression_id: Text
    ts: Timestamp
    user_id: Text
    item_id: Text
    experiment: Text
    arm: Text
    score: float | None = None
    features: dict[str, str] = {}
    dense: dict[str, FeatureValue] = {}
    embedding: list[FeatureValue] | None = None


class Click(msgspec.Struct, tag_field="type", tag="click", kw_only=True, gc=False):
    """A click, attributed to an impression by id."""

    impression_id: Text
    ts: Timestamp


Event = Union[Impression, Click]


class Invalid(msgspec.Struct, frozen=True):
    """A rejected record: bounded reason code, detail, and the original bytes."""

    reason: str
    detail: str
    raw: bytes


_decoder = msgspec.json.Decoder(Event)


def _to_ms(ts: int | _dt.datetime) -> int:
    if isinstance(ts, int):
        return ts
    return int(ts.timestamp() * 1000)


def validation_reason(message: str) -> str:
    """Map msgspec's validation message to a reason code (the message stays as detail)."""
    if message.startswith("Object missing required field"):
        return "missing_field"
    if "Invalid value" in message and "$.type" in message:
        return "unknown_type"
    if message.startswith("Number out of range"):
        return "non_finite"
    if message.startswith(("Expected `float` >=", "Expected `float` <=")):  # ``FeatureValue``'s bound
        return "out_of_range"
    return "wrong_type"


def _finite(ev: Impression) -> str | None:
    # Only the score needs a look, for its range: JSON has no NaN/Infinity tokens, and msgspec
    # rejects a number that overflows a float ("Number out of range", classified
    # ``non_finite``), so decoded values are finite without a per-value check.
    if ev.score is not None and not 0.0 <= ev.score <= 1.0:
        return f"score {ev.score!r} is not a probability in [0, 1]"
    return None


def _types_given(data: bytes) -> list:
    """Every value a record gives its top-level ``type`` key, in order. Only on the path of
    a record msgspec rejected (it keeps one of duplicate keys); the standard library's
    decoder sees them all."""
    if not data.lstrip().startswith(b"{"):
        return []
    try:
        pairs = json.loads(data, object_pairs_hook=lambda kv: kv)
    except (ValueError, RecursionError):
        return []
    return [v for k, v in pairs if k == "type"]


def decode_event(
    raw: bytes | str,
    *,
    max_bytes: int = 65_536,
    max_embedding_dims: int = 1024,
    max_string_length: int = 512,
    declared_arms: dict[str, set[str]] | None = None,
) -> Impression | Click | Invalid:
    """Decode and validate one record; never raises on bad input."""
    try:
        data = raw.encode() if isinstance(raw, str) else raw
    except UnicodeEncodeError as exc:  # a lone surrogate in text read with surrogateescape
        return Invalid("unparseable", str(exc), raw.encode("utf-8", "surrogateescape"))
    if len(data) > max_bytes:
        # A file reader hands over only the first max_bytes + 1 bytes of a longer line: its
        # length is not known, only that it is over.
        size = f"{len(data):,} bytes, " if len(data) > max_bytes + 1 else ""
        return Invalid("oversized", f"{size}over limits.max_event_bytes ({max_bytes:,} bytes)", data[:max_bytes])
    try:
        ev = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        reason = validation_reason(msg)
        if reason == "unknown_type":
            types = _types_given(data)
            if len(types) > 1:  # msgspec names one of them, which may be a valid type
                shown = ", ".join(repr(t)[:40] for t in types[:4]) + (", ..." if len(types) > 4 else "")
                msg += f": `type` is given more than once ({shown})"
        return Invalid(reason, msg, data)
    except msgspec.DecodeError as exc:
        msg = str(exc)
        return Invalid("non_finite" if msg.startswith("Number out of range") else "unparseable", msg, data)
    except (UnicodeDecodeError, RecursionError) as exc:  # invalid UTF-8 in a string; absurd nesting
        return Invalid("unparseable", f"{type(exc).__name__}: {exc}"[:300], data)
    return _check(ev, data, max_embedding_dims, max_string_length, declared_arms)


def _check(ev: Impression | Click, data: bytes, max_embedding_dims: int, max_string_length: int,
           declared_arms: dict[str, set[str]] | None) -> Impression | Click | Invalid:
    """The checks a decoded event still needs (what the schema cannot say)."""
    ts = ev.ts
    if type(ts) is not int:
        ts = ev.ts = _to_ms(ts)
    if not 0 <= ts <= MAX_TS_MS:
        return Invalid("out_of_range", f"ts must be epoch milliseconds in [0, {MAX_TS_MS}] (year 9999)", data)
    if type(ev) is Impression:
        bad = _finite(ev)
        if bad:
            return Invalid("out_of_range", bad, data)
        # A record shorter than a limit cannot hold a string or embedding over it: the usual
        # case skips the per-field checks.
        if len(data) > 2 * max_embedding_dims and ev.embedding is not None and len(ev.embedding) > max_embedding_dims:
            return Invalid("oversized", f"embedding has {len(ev.embedding)} dims > {max_embedding_dims}", data)
        if len(data) > max_string_length:
            for name in ("impression_id", "user_id", "item_id", "experiment", "arm"):
                if len(getattr(ev, name)) > max_string_length:
                    return Invalid("oversized", f"{name} longer than {max_string_length}", data)
        if ev.experiment not in _NAMES_OK or ev.arm not in _NAMES_OK:
            bad = _bad_name(ev)
            if bad:
                return Invalid("out_of_range", bad, data)
        if declared_arms is not None:
            arms = declared_arms.get(ev.experiment)
            if arms is None or ev.arm not in arms:
                return Invalid("unknown_arm", f"arm {ev.arm!r} of experiment {ev.experiment!r} is not declared", data)
    elif len(ev.impression_id) > max_string_length:
        return Invalid("oversized", f"impression_id longer than {max_string_length}", data)
    return ev


#: Experiment and arm names found clean; a stream has few, so each is looked at once (the
#: set is emptied if a stream of ever-new names fills it).
_NAMES_OK: set[str] = set()
_NAMES_OK_MAX = 10_000


def _bad_name(ev: Impression) -> str | None:
    """Why the impression's experiment or arm name cannot be a name (``None``: it can).

    >>> ev = Impression(impression_id="i", ts=0, user_id="u", item_id="a", experiment="e", arm="c\\nX")
    >>> _bad_name(ev)
    'arm holds a control or invisible character (U+000A); a name is printed in logs, labels and summaries'
    """
    for field in ("experiment", "arm"):
        name = getattr(ev, field)
        if name in _NAMES_OK:
            continue
        why = unfit(name)
        if why:
            return f"{field} {why}; a name is printed in logs, labels and summaries"
        if len(_NAMES_OK) >= _NAMES_OK_MAX:
            _NAMES_OK.clear()
        _NAMES_OK.add(name)
    return None


def decode_events(
    raws: Sequence[bytes | str],
    *,
    max_bytes: int = 65_536,
    max_embedding_dims: int = 1024,
    max_string_length: int = 512,
    declared_arms: dict[str, set[str]] | None = None,
) -> list[Impression | Click | Invalid]:
    """``[decode_event(r) for r in raws]``, decoding the batch in one call when it can.

    The fast path joins the records with newlines and decodes them as JSON Lines in one call;
    it is taken only when that cannot change the result: every record is non-blank bytes
    within ``max_bytes`` with no newline of its own, and the whole batch decodes to one value
    per record. Otherwise (a bad
    record in the batch, say) each record is decoded on its own, as ``decode_event`` does.

    >>> decode_events([b'{"type":"click","impression_id":"i","ts":5}', b'{"type":"click"}'])[1].reason
    'missing_field'
    >>> two = b'{"type":"click","impression_id":"a","ts":5}{"type":"click","impression_id":"b","ts":6}'
    >>> [e.reason for e in decode_events([two, b""])]  # two objects in one record: not two records
    ['unparseable', 'unparseable']
    """
    if len(raws) > 1:
        try:
            buf = b"\n".join(raws)  # type: ignore[arg-type]  # TypeError for str records
            # No record may hold a newline of its own. bytes.count walks the buffer a byte at
            # a time: numpy counts a large batch 7x faster, a few records slower.
            lines = (buf.count(b"\n") if len(buf) < _NUMPY_COUNT_FROM
                     else int(np.count_nonzero(np.frombuffer(buf, dtype=np.uint8) == 10)))
            # JSON Lines skips blank lines and reads values side by side on one line, so a blank
            # record beside one holding two objects would decode to the right count: no blank
            # record goes this way (checked in C: a few ns per record).
            fast = (max(map(len, raws)) <= max_bytes and lines == len(raws) - 1 and min(map(len, raws)) > 0
                    and not any(map(bytes.isspace, raws)))  # type: ignore[arg-type]
        except TypeError:
            fast = False
        if fast:
            try:
                evs = _decoder.decode_lines(buf)
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                evs = None
            if evs is not None and len(evs) == len(raws):
                return [_check(ev, raw, max_embedding_dims, max_string_length, declared_arms)  # type: ignore[arg-type]
                        for ev, raw in zip(evs, raws)]
    return [decode_event(r, max_bytes=max_bytes, max_embedding_dims=max_embedding_dims,
                         max_string_length=max_string_length, declared_arms=declared_arms) for r in raws]


#: Batches of at least this many bytes have their newlines counted in numpy.
_NUMPY_COUNT_FROM = 64 * 1024

_encoder = msgspec.json.Encoder()


def encode_event(ev: Impression | Click) -> bytes:
    """Serialise an event as compact JSON (the wire format of the topics and files)."""
    return _encoder.encode(ev)
