"""Impression-click join in event time: labels, click outcomes, late and duplicate events.

Scenarios use W = 1 s (1000 ms) unless stated; an impression at ``ts`` is final once the
watermark passes ``ts + W``. Labels are observed through a probe that records every released
example (``RecordingProbe``), so "labelled exactly once" is checked per impression id.
"""

from __future__ import annotations

import random

import pytest

from _helpers import click, feed, imp, recording_engine, sim_records, small_cfg
from stream_lis.engine import Engine
from stream_lis.events import Invalid
from stream_lis.join import CLICK_OUTCOMES, ClickJoiner

W = 1_000


def _clicks(eng: Engine) -> dict[str, int]:
    return {k: v for k, v in eng.counters.clicks.items() if v}


# -- positives and negatives -------------------------------------------------------------

def test_in_window_click_makes_a_positive_label_final_only_after_the_window():
    eng, rec = recording_engine(small_cfg(window="1s", horizon="3s"))
    eng.process([imp("i1", 10_000), click("i1", 10_400)])
    assert _clicks(eng) == {"attributed": 1}
    # Watermark at exactly ts + W: the window is still open, the label not final.
    eng.process([imp("z1", 11_000, user="v", item="b")])
    assert "i1" in eng.joiner.pending and eng.snapshot().held_examples == 0
    eng.process([imp("z2", 11_001, user="v", item="b")])
    # final, and now held for the look-ahead horizon (nothing evaluated yet)
    assert "i1" not in eng.joiner.pending and eng.snapshot().held_examples == 1
    assert rec.released == []
    eng.flush()
    assert rec.labels()["i1"] == 1
    assert [r[2] for r in rec.released if r[0] == "i1"] == [10_400]  # click_ts kept


@pytest.mark.parametrize("offset", [0, W], ids=["click-at-ts", "click-at-ts+W"])
def test_window_is_closed_at_both_ends(offset):
    eng, rec = recording_engine(small_cfg())
    eng.process([imp("i1", 5_000), click("i1", 5_000 + offset)])
    eng.flush()
    assert _clicks(eng) == {"attributed": 1}
    assert rec.labels() == {"i1": 1}


def test_no_click_gives_a_negative_once_the_watermark_passes_ts_plus_w():
    eng, rec = recording_engine(small_cfg(window="1s", horizon="3s"))
    eng.process([imp("i1", 0), imp("z1", W, user="v")])
    assert "i1" in eng.joiner.pending
    eng.process([imp("z2", W + 1, user="v")])
    assert "i1" not in eng.joiner.pending and eng.snapshot().held_examples == 1
    eng.flush()
    assert rec.labels()["i1"] == 0
    assert [r[2] for r in rec.released if r[0] == "i1"] == [None]  # no click_ts
    assert eng.snapshot().arms[0].labelled_negative == 3


def test_joiner_alone_closes_windows_in_deadline_order():
    j = ClickJoiner(window_ms=100)
    j.add_impression(imp("late_deadline", 50))
    j.add_impression(imp("early_deadline", 0))
    assert j.add_click(click("late_deadline", 120)) == "attributed"
    assert j.expire(watermark=100) == []
    assert [(x.impression.impression_id, x.label) for x in j.expire(watermark=101)] == [("early_deadline", 0)]
    assert [(x.impression.impression_id, x.label, x.click_ts) for x in j.expire(watermark=151)] == [
        ("late_deadline", 1, 120)]
    assert len(j) == 0


# -- duplicates and late clicks ----------------------------------------------------------

def test_duplicate_clicks_are_counted_and_never_change_the_label():
    eng, rec = recording_engine(small_cfg())
    eng.process([imp("i1", 0), click("i1", 100), click("i1", 200), click("i1", 100)])
    assert _clicks(eng) == {"attributed": 1, "duplicate": 2}
    eng.process([imp("z", 1_500, user="v")])  # label of i1 final (positive)
    eng.process([click("i1", 300)])  # a duplicate after the label is final
    assert _clicks(eng) == {"attributed": 1, "duplicate": 3}
    eng.flush()
    assert rec.labels() == {"i1": 1, "z": 0}
    st = eng.snapshot().arms[0]
    assert (st.labelled_positive, st.labelled_negative, st.clicks) == (1, 1, 1)
    # Only the attributed click enters the behaviour log the probes read.
    assert rec.logged_clicks["i1"] == ["i1"]


def test_late_click_after_a_final_negative_is_counted_late_and_label_stays_zero():
    eng, rec = recording_engine(small_cfg())
    eng.process([imp("i1", 0), imp("z", 1_500, user="v")])  # wm 1500 > 0 + W: i1 final, 0
    assert "i1" not in eng.joiner.pending
    eng.process([click("i1", 500)])  # in i1's window by event time, but too late
    assert _clicks(eng) == {"late": 1}
    eng.flush()
    assert rec.labels()["i1"] == 0
    assert eng.snapshot().arms[0].labelled_positive == 0
    assert rec.logged_clicks["i1"] == []


@pytest.mark.parametrize("label", [0, 1])
def test_click_outside_the_window_is_out_of_window_after_the_label_is_final_too(label):
    # A click 1.5 W after its impression arrives once the watermark closed the window (the
    # usual case for a long-delayed click): it was never in the window, so it is not "late"
    # (which would say: raise the allowed lateness) nor a duplicate.
    eng, rec = recording_engine(small_cfg())
    eng.process([imp("i1", 0)] + ([click("i1", 400)] if label else []) + [imp("z", 1_800, user="v")])
    assert "i1" not in eng.joiner.pending
    eng.process([click("i1", 1_500)])
    assert _clicks(eng) == ({"attributed": 1} if label else {}) | {"out_of_window": 1}
    eng.process([click("i1", 1_000)])  # at ts + W: inside, so late / duplicate as before
    assert eng.counters.clicks["duplicate" if label else "late"] == 1
    eng.flush()
    assert rec.labels()["i1"] == label


def test_final_labels_of_an_older_checkpoint_still_tell_late_from_out_of_window():
    import msgspec

    from stream_lis.packing import pack_array

    j = ClickJoiner(W)
    j.add_impression(imp("i1", 0))
    j.add_impression(imp("i2", 10))
    j.add_click(click("i2", 20))
    j.expire(1_500)
    state = j.state()
    # the older layout: final labels 0/1 beside the (deadline, id) order
    state["finals"] = pack_array([(1_000, "i1"), (1_010, "i2")], {"i1": 0, "i2": 1})
    back = ClickJoiner(W)
    back.load(msgspec.msgpack.decode(msgspec.msgpack.encode(state)))
    assert [back.add_click(click("i1", 500)), back.add_click(click("i1", 1_200)),
            back.add_click(click("i2", 30)), back.add_click(click("i2", 1_011))] == \
        ["late", "out_of_window", "duplicate", "out_of_window"]


def test_a_click_attributed_after_the_watermark_passed_it_counts_in_the_arm_clicks():
    # The click at 40 is in i's window and i is pending, but the watermark (50) passed it: it
    # labels i but stays out of the behaviour log. The arm's clicks (stream_lis_clicks) must
    # still count it, as the join does.
    eng, rec = recording_engine(small_cfg(window="100ms", horizon="10ms", lateness="100ms"))
    eng.process([imp("i", 0), imp("k", 150, user="v", item="b"), click("i", 40)])
    eng.flush()
    arm = eng.snapshot().arms[0]
    assert _clicks(eng) == {"attributed": 1}
    assert (arm.clicks, arm.labelled_positive) == (1, 1)
    assert rec.logged_clicks["i"] == []


# -- orphans and out-of-order pairs ------------------------------------------------------

def test_orphan_click_is_counted_once_when_the_watermark_passes_it():
    eng, rec = recording_engine(small_cfg(lateness="500ms"))
    eng.process([click("ghost", 1_000)])
    assert _clicks(eng) == {}  # held: its impression may still arrive
    eng.process([imp("a1", 1_400)])  # wm 900
    assert _clicks(eng) == {}
    eng.process([imp("a2", 1_500)])  # wm 1000: not past the click yet
    assert _clicks(eng) == {}
    eng.process([imp("a3", 1_501)])  # wm 1001 > 1000: no impression can claim it now
    assert _clicks(eng) == {"orphan": 1}
    eng.process([imp("a4", 9_000)])
    eng.flush()
    assert _clicks(eng) == {"orphan": 1}
    assert set(rec.labels().values()) == {0}


def test_orphans_still_held_at_end_of_input_are_counted_by_flush():
    eng, _ = recording_engine(small_cfg(lateness="10s"))
    eng.process([click("g1", 100), click("g2", 200), click("g2", 300)])
    assert _clicks(eng) == {}
    eng.flush()
    assert _clicks(eng) == {"orphan": 3}


def test_orphan_is_counted_when_passed_even_if_a_later_orphan_arrived_first():
    eng, _ = recording_engine(small_cfg(lateness="5s"))
    eng.process([click("ghostA", 5_000), click("ghostB", 1_000)])  # wm 0
    eng.process([imp("x", 7_000)])  # wm 2000: ghostB's impression (ts <= 1000) would be late
    assert eng.counters.clicks["orphan"] == 1


def test_a_stray_held_click_turning_orphan_does_not_take_a_valid_one_with_it():
    # Two clicks wait for impression z: one at 50 (no impression on time can have it in its
    # window: it becomes an orphan when the watermark passes 50) and one at 200, which z (at
    # 150, on time) must still get.
    eng, rec = recording_engine(small_cfg(window="100ms", lateness="100ms"))
    eng.process([click("z", 200), click("z", 50)])  # wm 100: the click at 50 is an orphan now
    assert _clicks(eng) == {"orphan": 1}
    eng.process([imp("z", 150)])
    assert _clicks(eng) == {"orphan": 1, "attributed": 1}
    eng.flush()
    assert rec.labels() == {"z": 1}


def test_click_arriving_before_its_impression_joins_and_gives_a_positive():
    eng, rec = recording_engine(small_cfg(lateness="500ms"))
    eng.process([click("i1", 1_200)])  # wm 700
    assert _clicks(eng) == {}
    eng.process([imp("i1", 1_000)])  # not late (>= wm 700): joins the held click
    assert _clicks(eng) == {"attributed": 1}
    eng.flush()
    assert rec.labels() == {"i1": 1}
    assert eng.counters.clicks["orphan"] == 0


def test_duplicate_clicks_held_before_their_impression_count_once_as_attributed():
    eng, rec = recording_engine(small_cfg(lateness="500ms"))
    eng.process([click("i1", 1_200), click("i1", 1_300), imp("i1", 1_000)])
    eng.flush()
    assert _clicks(eng) == {"attributed": 1, "duplicate": 1}
    assert rec.labels() == {"i1": 1}


@pytest.mark.parametrize("cts", [999, 2_001, 5_000], ids=["before-ts", "just-after-ts+W", "far-after"])
def test_click_outside_the_window_is_out_of_window_and_not_a_positive(cts):
    eng, rec = recording_engine(small_cfg(lateness="10s"))
    eng.process([imp("i1", 1_000), click("i1", cts)])
    assert _clicks(eng) == {"out_of_window": 1}
    eng.flush()
    assert rec.labels() == {"i1": 0}


def test_early_click_outside_the_window_is_out_of_window_when_the_impression_arrives():
    eng, rec = recording_engine(small_cfg(lateness="10s"))
    eng.process([click("i1", 3_000)])
    eng.process([imp("i1", 1_000)])
    assert _clicks(eng) == {"out_of_window": 1}
    eng.flush()
    assert rec.labels() == {"i1": 0}
    assert eng.counters.clicks["orphan"] == 0


# -- invalid impressions ------------------------------------------------------------------

def test_impression_older_than_the_watermark_is_a_late_event():
    seen: list[tuple[str, str]] = []
    eng, rec = recording_engine(small_cfg(lateness="100ms"), on_invalid=lambda inv, src: seen.append((inv.reason, src)))
    eng.process([imp("i1", 5_000)], source="topic")  # wm 4900
    eng.process([imp("ok", 4_900, user="v"), imp("late", 4_899, user="w")], source="topic")
    assert dict(eng.counters.invalid) == {"late_event": 1}
    assert seen == [("late_event", "topic")]
    eng.flush()
    assert set(rec.labels()) == {"i1", "ok"}
    assert sum(eng.counters.impressions.values()) == 2


def test_duplicate_impression_id_is_rejected_while_pending_and_after_its_label():
    seen: list[Invalid] = []
    eng, rec = recording_engine(small_cfg(lateness="10s"), on_invalid=lambda inv, src: seen.append(inv))
    eng.process([imp("i1", 1_000), imp("i1", 1_010, item="other")])  # while pending
    eng.process([imp("z", 12_500, user="v")])  # wm 2500: i1 final, remembered for another W
    assert "i1" not in eng.joiner.pending
    eng.process([imp("i1", 2_600)])  # same id again: still a duplicate
    assert dict(eng.counters.invalid) == {"duplicate_impression": 2}
    assert [inv.reason for inv in seen] == ["duplicate_impression"] * 2
    assert b'"i1"' in seen[0].raw  # the dead letter carries the record
    eng.flush()
    assert rec.labels() == {"i1": 0, "z": 0}
    assert [r[3] for r in rec.released if r[0] == "i1"] == [1_000]  # the first one won


def test_declared_arms_reject_unknown_arm_records_in_the_engine():
    cfg = small_cfg(experiments=[{"name": "e", "arms": ["c"]}])
    eng, rec = recording_engine(cfg)
    good = b'{"type":"impression","impression_id":"i1","ts":1,"user_id":"u","item_id":"a","experiment":"e","arm":"c"}'
    bad = good.replace(b'"arm":"c"', b'"arm":"zz"').replace(b"i1", b"i2")
    eng.process_records([good, bad])
    eng.flush()
    assert dict(eng.counters.invalid) == {"unknown_arm": 1}
    assert rec.labels() == {"i1": 0}


# -- bookkeeping invariants ---------------------------------------------------------------

def _random_stream(seed: int, n: int = 600):
    """Impressions with in-window, duplicate, late, out-of-window, early and orphan clicks,
    plus late and duplicate impressions, shuffled within a bounded arrival jitter."""
    rng = random.Random(seed)
    timed = []
    for k in range(n):
        ts = 1_000 + k * 37
        iid = f"i{k}"
        timed.append((ts + rng.uniform(0, 300), imp(iid, ts, user=f"u{k % 13}", item=f"a{k % 7}")))
        r = rng.random()
        if r < 0.3:
            cts = ts + rng.randint(0, W)
            timed.append((cts + rng.uniform(-400, 300), click(iid, cts)))
            if rng.random() < 0.3:
                timed.append((cts + rng.uniform(0, 3_000), click(iid, cts + 5)))
        elif r < 0.35:
            cts = ts + W + rng.randint(1, 500)
            timed.append((cts, click(iid, cts)))
        elif r < 0.4:
            # arrives once i1's negative is final (wm > ts + W) but still remembered (<= ts + 2W)
            timed.append((ts + rng.uniform(1_700, 2_300), click(iid, ts + 100)))
        if rng.random() < 0.02:
            timed.append((ts + rng.uniform(0, 2_000), imp(iid, ts + 1, user="dup")))
        if rng.random() < 0.02:
            timed.append((ts + 5_000, imp(f"late{k}", ts)))
        if rng.random() < 0.02:
            timed.append((ts, click(f"ghost{k}", ts)))
    timed.sort(key=lambda x: x[0])
    return [ev for _, ev in timed]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_accepted_impression_is_labelled_exactly_once_and_every_click_has_one_outcome(seed):
    events = _random_stream(seed)
    eng, rec = recording_engine(small_cfg(window="1s", horizon="2s", lateness="500ms"))
    for k in range(0, len(events), 50):
        eng.process(events[k:k + 50])
    eng.flush()
    labels = rec.labels()  # raises on a double label
    accepted = sum(eng.counters.impressions.values())
    n_imps = sum(1 for e in events if hasattr(e, "user_id"))
    n_clicks = len(events) - n_imps
    assert accepted + sum(eng.counters.invalid.values()) == n_imps
    assert eng.counters.invalid["late_event"] > 0 and eng.counters.invalid["duplicate_impression"] > 0
    assert len(labels) == accepted
    st = eng.snapshot().arms[0]
    assert st.labelled == accepted
    assert st.labelled_positive == sum(labels.values()) == eng.counters.clicks["attributed"]
    assert set(eng.counters.clicks) <= set(CLICK_OUTCOMES)
    assert sum(eng.counters.clicks.values()) == n_clicks
    for outcome in ("attributed", "duplicate", "late", "out_of_window", "orphan"):
        assert eng.counters.clicks[outcome] > 0, outcome
    snap = eng.snapshot()
    assert snap.pending_impressions == 0 and snap.held_examples == 0
    # every label in the label-delay histogram, the positives alone in the click-delay one,
    # all of them within the window (1 s: the first bucket)
    c = snap.counters
    assert sum(c.label_delay) == accepted and sum(c.click_delay) == st.labelled_positive == c.click_delay[0]
    assert 0 < c.click_delay_sum < c.label_delay_sum


def test_click_delay_survives_a_checkpoint_and_starts_at_zero_from_an_older_one():
    from stream_lis.labeller import LabelCounters

    c = LabelCounters()
    c.click_delay[3] = 5
    c.click_delay_sum = 80.0
    back = LabelCounters.from_state(c.state())
    assert back.click_delay == c.click_delay and back.click_delay_sum == 80.0
    older = {k: v for k, v in c.state().items() if not k.startswith("click_delay")}
    assert LabelCounters.from_state(older).click_delay == [0] * len(c.click_delay)
    assert LabelCounters.from_state(older).merge(back).click_delay == c.click_delay


def test_an_absurd_timestamp_cannot_leave_an_accepted_impression_unlabelled():
    eng, rec = recording_engine(small_cfg())
    tmpl = ('{"type":"impression","impression_id":"%s","ts":%d,"user_id":"u","item_id":"a",'
            '"experiment":"e","arm":"c"}')
    eng.process_records([(tmpl % ("i1", 1_000)).encode(), (tmpl % ("i2", 10**23)).encode(),
                         (tmpl % ("i3", 2_000)).encode()])
    eng.flush()
    assert len(rec.labels()) == sum(eng.counters.impressions.values())


def test_simulator_stream_bookkeeping_balances():
    records = sim_records(3_000, seed=5)
    eng, rec = recording_engine(small_cfg(window="30m", horizon="1h", lateness="2m"))
    feed(eng, records, 500)
    eng.flush()
    labels = rec.labels()
    n_clicks = sum(r.startswith(b'{"type": "click"') for r in records)
    assert len(records) - n_clicks == sum(eng.counters.impressions.values()) + sum(eng.counters.invalid.values())
    assert len(labels) == sum(eng.counters.impressions.values())
    assert sum(labels.values()) == eng.counters.clicks["attributed"]
    assert sum(eng.counters.clicks.values()) == n_clicks


def test_a_far_future_event_is_rejected_and_does_not_move_the_clock():
    """One record from a skewed clock must not close every window at once."""
    from stream_lis.config import load_config
    from stream_lis.engine import Engine
    from stream_lis.events import Click, Impression

    now = 1_795_000_000_000
    eng = Engine(load_config(None, {"time.attribution_window": "1s", "time.horizon": "1s", "time.allowed_lateness": "0s"}))
    eng.labeller.clock = lambda: now / 1000
    base = dict(user_id="u", item_id="a", experiment="e", arm="c")
    eng.process([Impression(impression_id="i1", ts=now - 10_000, **base),
                 Click(impression_id="ghost", ts=now + 3 * 86_400_000),        # 3 days ahead
                 Impression(impression_id="i2", ts=now + 2 * 86_400_000, **base),  # 2 days ahead
                 Impression(impression_id="i3", ts=now - 9_000, **base)])
    c = eng.counters
    assert c.invalid["future_event"] == 2
    assert c.invalid.get("late_event", 0) == 0  # i3 is on time: the clock did not jump
    assert "i1" in eng.joiner.pending and "i3" in eng.joiner.pending


def test_by_default_an_event_minutes_ahead_is_rejected_and_real_events_stay_on_time():
    """A producer writing local time as UTC dates its records hours ahead; one such record
    must not make the next hour of real events late."""
    from stream_lis.config import load_config
    from stream_lis.engine import Engine
    from stream_lis.events import Impression

    now = 1_795_000_000_000
    eng = Engine(load_config(None, {}))  # the default skew and lateness
    eng.labeller.clock = lambda: now / 1000
    base = dict(user_id="u", item_id="a", experiment="e", arm="c")
    eng.process([Impression(impression_id="tz", ts=now + 3_600_000, **base),   # an hour ahead
                 Impression(impression_id="ok", ts=now + 60_000, **base),      # a minute ahead: accepted
                 Impression(impression_id="real", ts=now - 1_000, **base)])
    c = eng.counters
    assert c.invalid["future_event"] == 1
    assert c.invalid.get("late_event", 0) == 0
    assert "ok" in eng.joiner.pending and "real" in eng.joiner.pending
