"""decode_event: every rejection reason it can produce, timestamps, and robustness to garbage.

The contract (stream_lis/events.py): raw bytes in, a typed event or an ``Invalid`` with a
bounded reason code out, and *never* an exception on bad input, since one bad record must
not crash a worker.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re

import pytest

from stream_lis.events import REASONS, Click, Impression, Invalid, decode_event, decode_events

# Reasons decode_event itself produces; the others are assigned later by the engine.
DECODER_REASONS = {"unparseable", "missing_field", "wrong_type", "non_finite", "out_of_range", "oversized",
                   "unknown_type", "unknown_arm"}
ENGINE_REASONS = {"late_event", "future_event", "duplicate_impression", "shed_overload"}


def impression_json(**fields) -> bytes:
    base = {"type": "impression", "impression_id": "i1", "ts": 1_000, "user_id": "u1",
            "item_id": "a", "experiment": "exp", "arm": "control"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not _DROP}).encode()


_DROP = object()


def click_json(**fields) -> bytes:
    base = {"type": "click", "impression_id": "i1", "ts": 1_500}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not _DROP}).encode()


def reason(raw, **kw) -> str | None:
    out = decode_event(raw, **kw)
    return out.reason if isinstance(out, Invalid) else None


def test_reason_codes_are_partitioned_between_decoder_and_engine():
    assert set(REASONS) == DECODER_REASONS | ENGINE_REASONS
    assert len(REASONS) == len(set(REASONS))


def test_valid_impression_and_click_decode_to_typed_events():
    ev = decode_event(impression_json(score=0.25, features={"device": "ios"}, dense={"x": -1.5},
                                      embedding=[0.1, -0.2]))
    assert isinstance(ev, Impression)
    assert (ev.impression_id, ev.ts, ev.user_id, ev.item_id, ev.experiment, ev.arm) == (
        "i1", 1_000, "u1", "a", "exp", "control")
    assert ev.score == 0.25 and ev.features == {"device": "ios"} and ev.dense == {"x": -1.5}
    assert ev.embedding == [0.1, -0.2]
    c = decode_event(click_json())
    assert isinstance(c, Click) and (c.impression_id, c.ts) == ("i1", 1_500)
    # str input is accepted like bytes
    assert decode_event(click_json().decode()) == c


@pytest.mark.parametrize("raw", [
    b"", b"{", b'{"type":"click"', b"not json", b"\xff\xfe\x00", b'{"type":"click",}',
    b'{"type":"click","impression_id":"i","ts":1} trailing',
    b'{"type":"impression","score":NaN}',  # NaN is not JSON
])
def test_unparseable_bytes(raw):
    assert reason(raw) == "unparseable"


@pytest.mark.parametrize("raw", [
    click_json(ts=_DROP),
    click_json(impression_id=_DROP),
    impression_json(user_id=_DROP),
    impression_json(item_id=_DROP),
    impression_json(experiment=_DROP),
    impression_json(arm=_DROP),
    b'{"impression_id":"i1","ts":5}',  # no type tag
])
def test_missing_field(raw):
    assert reason(raw) == "missing_field"


@pytest.mark.parametrize("raw", [
    click_json(ts="yesterday"),
    click_json(ts=1.5),
    click_json(ts=True),
    click_json(ts=None),
    click_json(impression_id=7),
    click_json(impression_id=""),  # ids must be non-empty
    impression_json(score="0.5"),
    impression_json(features={"device": 3}),
    impression_json(dense={"x": "1"}),
    impression_json(embedding="0.1,0.2"),
    b"[1, 2, 3]",
    b"null",
    b'"a string"',
])
def test_wrong_type(raw):
    assert reason(raw) == "wrong_type"


@pytest.mark.parametrize("raw", [
    click_json(ts=-1),  # before the epoch
    click_json(ts="1960-01-01T00:00:00Z"),
    click_json(ts=253_402_300_800_000),  # after 9999: a unit mistake
])
def test_a_time_outside_the_epoch_range_is_out_of_range(raw):
    inv = decode_event(raw)
    assert inv.reason == "out_of_range" and "epoch milliseconds" in inv.detail


@pytest.mark.parametrize("raw", [impression_json(score=1.5), impression_json(score=-0.01)])
def test_a_finite_score_outside_zero_one_is_out_of_range(raw):
    inv = decode_event(raw)
    assert inv.reason == "out_of_range" and "not a probability" in inv.detail


def test_a_type_given_twice_is_said_so():
    # A valid type named as unknown would send the producer's owner looking in the wrong place.
    inv = decode_event(b'{"type":"impression","type":"click","impression_id":"i","ts":5}')
    assert inv.reason == "unknown_type" and "`type` is given more than once" in inv.detail
    assert "more than once" not in decode_event(click_json(type="view")).detail
    # an invalid second value: msgspec names it alone, as if it were the record's only type
    inv = decode_event(b'{"type":"click","type":"view","impression_id":"i","ts":5}')
    assert inv.reason == "unknown_type" and "`type` is given more than once ('click', 'view')" in inv.detail


@pytest.mark.parametrize("field, name, code", [
    ("experiment", "exp\nWARNING forged line", "U+000A"),
    ("arm", "control\x00", "U+0000"),
    ("arm", "con\u2028trol", "U+2028"),
    ("experiment", "\x9bexp", "U+009B"),
    ("arm", "cont\ufeffrol", "U+FEFF"),  # invisible: would pass for another name
    ("arm", "\u202econtrol", "U+202E"),
])
def test_a_name_with_a_control_character_is_rejected(field, name, code):
    # A name is printed in log lines, summaries and legends: a newline in one forges a line.
    raw = impression_json(**{field: name})
    for inv in (decode_event(raw), decode_events([raw, click_json()])[0]):
        assert inv.reason == "out_of_range" and inv.detail.startswith(f"{field} holds a control or invisible character ({code})")
    # the same name without it is accepted, as are names outside ASCII
    clean = re.sub("[\x00-\x1f\x7f-\x9f\u2028\u202e\ufeff]", "", name)
    assert reason(impression_json(**{field: clean})) is None
    assert reason(impression_json(**{field: "ünïcode ☃ 名前 👩\u200d💻"})) is None


@pytest.mark.parametrize("raw", [
    impression_json(ts=1_000).replace(b'"ts": 1000', b'"ts": 1e999'),
    impression_json(score=0.5).replace(b'"score": 0.5', b'"score": 1e999'),
    impression_json(score=0.5).replace(b'"score": 0.5', b'"score": -1e999'),
    impression_json(dense={"x": 0.5}).replace(b"0.5", b"1e999"),
    impression_json(embedding=[0.5, 0.25]).replace(b"0.25", b"-1e999"),
])
def test_numbers_overflowing_a_float_are_non_finite(raw):
    assert reason(raw) == "non_finite"


def test_score_boundaries_zero_and_one_are_valid_probabilities():
    assert isinstance(decode_event(impression_json(score=0)), Impression)
    assert isinstance(decode_event(impression_json(score=1)), Impression)


def test_oversized_record_bytes_rejected_before_parsing():
    raw = impression_json(features={"pad": "x" * 200})
    assert reason(raw, max_bytes=len(raw)) is None  # exactly at the limit is fine
    out = decode_event(raw, max_bytes=len(raw) - 1)
    assert isinstance(out, Invalid) and out.reason == "oversized"
    assert len(out.raw) <= len(raw) - 1  # a dead letter never carries more than the limit


def test_oversized_embedding_rejected():
    raw = impression_json(embedding=[0.0] * 9)
    assert reason(raw, max_embedding_dims=9) is None
    assert reason(raw, max_embedding_dims=8) == "oversized"


@pytest.mark.parametrize("field", ["impression_id", "user_id", "item_id", "experiment", "arm"])
def test_oversized_string_field_rejected(field):
    assert reason(impression_json(**{field: "x" * 16}), max_string_length=16) is None
    assert reason(impression_json(**{field: "x" * 17}), max_string_length=16) == "oversized"


def test_oversized_click_impression_id_rejected():
    assert reason(click_json(impression_id="x" * 17), max_string_length=16) == "oversized"


@pytest.mark.parametrize("type_", ["view", "Impression", "", "click "])
def test_unknown_type(type_):
    assert reason(click_json(type=type_)) == "unknown_type"


def test_unknown_arm_only_when_arms_are_declared():
    declared = {"exp": {"control", "treatment"}}
    assert reason(impression_json(arm="treatment"), declared_arms=declared) is None
    assert reason(impression_json(arm="t2"), declared_arms=declared) == "unknown_arm"
    assert reason(impression_json(experiment="other"), declared_arms=declared) == "unknown_arm"
    # Without declarations every (experiment, arm) is accepted.
    assert reason(impression_json(arm="t2")) is None
    # Clicks carry no arm and are never unknown_arm.
    assert reason(click_json(), declared_arms=declared) is None


def test_every_decoder_reason_is_reachable():
    """Guards the list above: a reason the decoder can no longer produce is dead code."""
    samples = [b"{", click_json(ts=_DROP), click_json(ts="x"), impression_json(score=2.0),
               impression_json(score=0.5).replace(b'"score": 0.5', b'"score": 1e999'), impression_json(embedding=[0.0] * 3), click_json(type="view"),
               impression_json(arm="zzz")]
    got = {reason(s, max_embedding_dims=2, declared_arms={"exp": {"control"}}) for s in samples}
    assert got == DECODER_REASONS


# -- timestamps -----------------------------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _ms(t: dt.datetime) -> int:
    return (t - _EPOCH) // dt.timedelta(milliseconds=1)


def test_rfc3339_and_epoch_ms_give_the_same_ms():
    rng = random.Random(11)
    base = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for _ in range(500):
        t = base + dt.timedelta(milliseconds=rng.randrange(0, 400 * 86_400_000))
        text = t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        via_text = decode_event(click_json(ts=text))
        via_int = decode_event(click_json(ts=_ms(t)))
        assert isinstance(via_text, Click) and isinstance(via_int, Click)
        assert via_text.ts == via_int.ts == _ms(t), text


def test_rfc3339_offsets_are_converted_to_utc():
    utc = decode_event(click_json(ts="2026-11-26T10:00:00Z")).ts
    assert utc == _ms(dt.datetime(2026, 11, 26, 10, tzinfo=dt.timezone.utc))
    assert decode_event(click_json(ts="2026-11-26T11:00:00+01:00")).ts == utc
    assert decode_event(click_json(ts="2026-11-26T05:30:00-04:30")).ts == utc
    imp = decode_event(impression_json(ts="2026-11-26T10:00:00.250Z"))
    assert isinstance(imp, Impression) and imp.ts == utc + 250


def test_naive_datetime_rejected():
    assert reason(click_json(ts="2026-11-26T10:00:00")) == "wrong_type"
    assert reason(impression_json(ts="2026-11-26T10:00:00.123")) == "wrong_type"


@pytest.mark.parametrize("ts", [1 << 62, (1 << 63) + 1, 10**23])
def test_absurd_epoch_ms_timestamp_rejected(ts):
    assert isinstance(decode_event(click_json(ts=ts)), Invalid)


# -- never raises ---------------------------------------------------------------------------

def _garbage_corpus() -> list[bytes | str]:
    rng = random.Random(2024)
    corpus: list[bytes | str] = []
    for n in (0, 1, 2, 7, 64, 512, 4096):
        for _ in range(20):
            corpus.append(bytes(rng.getrandbits(8) for _ in range(n)))
    good = click_json()
    for _ in range(300):  # bit-flipped / truncated versions of a valid record
        b = bytearray(impression_json(score=0.3, embedding=[0.1, 0.2]))
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.getrandbits(8)
        corpus.append(bytes(b[: rng.randint(0, len(b))]))
    corpus += [good[:k] for k in range(len(good))]
    for depth in (10, 100, 500, 900):  # nested values, alone and in an ignored field
        corpus.append(b'{"a":' * depth + b"1" + b"}" * depth)
        corpus.append(b'{"type":"click","impression_id":"i","ts":1,"x":' + b"[" * depth + b"]" * depth + b"}")
    for depth in (10, 1_000, 20_000, 60_000):  # top-level arrays of any depth, closed or not
        corpus.append(b"[" * depth + b"]" * depth)
        corpus.append(b"[" * depth)
    big = ["1" * 400, "-" + "9" * 400, "1e400", "-1e400", "1e-400", "18446744073709551616", "0.0e999999"]
    for num in big:
        corpus.append(impression_json(score=0.5).replace(b"0.5", num.encode()))
        corpus.append(impression_json(dense={"x": 0.5}).replace(b"0.5", num.encode()))
        corpus.append(impression_json(embedding=[0.5]).replace(b"0.5", num.encode()))
        corpus.append(num.encode())
    corpus += [
        impression_json(user_id="ユーザー🙂", item_id="\u0000\u200b", features={"é": "\U0010ffff"}),
        '{"type":"click","impression_id":"\u00e9\u4e2d","ts":1}',
        b'{"type":"click","impression_id":"\\ud800","ts":1}',  # escaped lone surrogate
        b'{"type":"click","impression_id":"\xed\xa0\x80","ts":1}',  # CESU surrogate bytes
        b'\xef\xbb\xbf{"type":"click","impression_id":"i","ts":1}',  # BOM
        b'{"type":"click","impression_id":"i","ts":1,"ts":2}',
        b'{"type":["click"],"impression_id":"i","ts":1}',
        b'{"type":{"$gt":""}}',
        b"\x00" * 100,
        "\u2028\u2029",
    ]
    return corpus


def _check_outcome(raw, out) -> None:
    assert isinstance(out, (Impression, Click, Invalid)), raw
    if isinstance(out, Invalid):
        assert out.reason in DECODER_REASONS, (out.reason, raw)
        assert isinstance(out.detail, str) and isinstance(out.raw, bytes)


_DECLARED_KW = {"declared_arms": {"exp": {"control"}}, "max_embedding_dims": 1, "max_string_length": 8}

def test_decode_event_never_raises_on_garbage():
    for raw in _garbage_corpus():
        for kw in ({}, _DECLARED_KW):
            _check_outcome(raw, decode_event(raw, **kw))


@pytest.mark.parametrize("raw", [
    b'{"type":"click","impression_id":"\xc3(","ts":1}',
    b'{"type":"click","impression_id":"\xff","ts":1}',
    b'{"type":"impression","impression_id":"i","ts":1,"user_id":"\xed\xa0\x80","item_id":"a",'
    b'"experiment":"e","arm":"c"}',
], ids=["truncated-sequence", "invalid-byte", "encoded-surrogate"])
def test_invalid_utf8_in_a_string_field_is_unparseable_not_raised(raw):
    out = decode_event(raw)
    assert isinstance(out, Invalid) and out.reason == "unparseable"


_DEEP = 1_000


@pytest.mark.parametrize("raw", [
    b'{"type":"click","impression_id":"i","ts":1,"x":' + b'{"a":' * _DEEP + b"1" + b"}" * (_DEEP + 1),
    b'{"type":"click","impression_id":"i","ts":1,"x":' + b"[" * _DEEP + b"]" * _DEEP + b"}",
    b'{"a":' * _DEEP + b"1" + b"}" * _DEEP,
], ids=["object-in-field", "array-in-field", "top-level-object"])
def test_deeply_nested_json_is_rejected_not_raised(raw):
    assert len(raw) < 65_536  # well inside the default size limit
    out = decode_event(raw)
    assert isinstance(out, (Click, Invalid))


def test_str_input_with_lone_surrogate_is_rejected_not_raised():
    out = decode_event('{"type":"click","impression_id":"\udcff","ts":1}')
    assert isinstance(out, Invalid) and out.reason == "unparseable"


def _outcome(ev) -> tuple:
    return (ev.reason, ev.raw) if isinstance(ev, Invalid) else ("ok", ev)


def test_a_batch_decodes_as_its_records_one_by_one():
    # The batch path decodes records joined as JSON Lines in one call; JSON Lines skips blank
    # lines and reads values side by side, so a record holding two objects next to a blank one
    # must not pass as two records (nor any other batch come out different).
    a, b, c = click_json(impression_id="a"), click_json(impression_id="b"), click_json(impression_id="c")
    specials = [a + b, a + b" " + b, a + b"\t" + b, b"", b" ", b"\r", b"\t \r", a, c,
                impression_json(), b"{not json", b"[]", b"null"]
    rng = random.Random(11)
    corpus = specials + [r if isinstance(r, bytes) else r.encode("utf-8", "surrogatepass")
                         for r in _garbage_corpus() if b"\n" not in (r if isinstance(r, bytes) else b"")]
    batches = [[a + b, b""], [a + b, b" "], [a + b" " + b, b"\r", c], [b"", a], [a, c]]
    batches += [[rng.choice(corpus) for _ in range(rng.randint(2, 12))] for _ in range(400)]
    for batch in batches:
        got = [_outcome(e) for e in decode_events(batch)]
        assert got == [_outcome(decode_event(r)) for r in batch], batch
    assert [e.reason for e in decode_events([a + b, b""])] == ["unparseable", "unparseable"]
