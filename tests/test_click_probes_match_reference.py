"""The compiled click probes (``co_click``, ``next_click`` over ``ClickLog``'s sorted columns)
give exactly the rows of their definition, written here as plain Python over the clicks in
arrival order: on random logs with ties, viral items, prunes that reclaim codes, and logs
restored from a checkpoint taken with clicks not yet merged."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import pytest

from stream_lis.events import Impression
from stream_lis.features import hash_rows
from stream_lis.join import LabelledExample
from stream_lis.probes import CoClickProbe, NextClickProbe
from stream_lis.probes.co_click import MAX_USERS
from stream_lis.probes.log import BehaviourLog

H = 100


def _window(clicks, key_index, key, t):
    """Clicks of one item (key_index 1) or user (0) in (t, t + H], by time, ties in arrival order."""
    return sorted((c for c in clicks if c[key_index] == key and t < c[2] <= t + H), key=lambda c: c[2])


def ref_co_click(clicks, ex, top_k):
    imp = ex.impression
    users: list[str] = []
    for user, _, _, iid in _window(clicks, 1, imp.item_id, imp.ts):
        if iid != imp.impression_id and user not in users:
            users.append(user)
            if len(users) == MAX_USERS:
                break
    if not users:
        return {}
    counts: dict[str, int] = {}
    for user in users:
        for _, item, _, _ in _window(clicks, 0, user, imp.ts):
            if item != imp.item_id:
                counts[item] = counts.get(item, 0) + 1
    top = sorted(counts, key=counts.__getitem__, reverse=True)[:top_k]
    return {"cc:log_users": math.log1p(len(users)), **{"cc:item=" + i: 1.0 for i in top}}


def ref_next_click(clicks, ex):
    imp = ex.impression
    for _, item, _, iid in _window(clicks, 0, imp.user_id, imp.ts):
        if iid != imp.impression_id:
            row = {"nc:any": 1.0, "nc:item=" + item: 1.0}
            if item == imp.item_id:
                row["nc:same_item"] = 1.0
            return row
    return {}


def _random_log(rng: random.Random, n_clicks: int, users: int, items: int, viral: bool = False):
    log, clicks = BehaviourLog(), []
    for k in range(n_clicks):
        item = "viral" if viral and rng.random() < 0.5 else f"i{rng.randrange(items)}"
        c = (f"u{rng.randrange(users)}", item, rng.randrange(0, 400, 3), f"imp{k}")  # ties on purpose
        log.add_click(*c)
        clicks.append(c)
    return log, clicks


def _examples(rng: random.Random, clicks, n: int, users: int, items: int):
    out = []
    for k in range(n):
        if k % 3 == 0 and clicks:  # an example whose own click is in the log
            user, item, ts, iid = rng.choice(clicks)
            imp = Impression(impression_id=iid, ts=max(0, ts - rng.randrange(0, 20)), user_id=user, item_id=item,
                             experiment="e", arm="a")
            out.append(LabelledExample(imp, 1, ts, ts))
        else:
            imp = Impression(impression_id=f"x{k}", ts=rng.randrange(-50, 400), user_id=f"u{rng.randrange(users + 3)}",
                             item_id=f"i{rng.randrange(items + 2)}", experiment="e", arm="a")
            out.append(LabelledExample(imp, 0, None, imp.ts))
    return out


def _check(log, clicks, examples, top_k=5):
    cc = CoClickProbe(top_k=top_k).columns(examples, log, H)
    nc = NextClickProbe().columns(examples, log, H)
    for ex, got_cc, got_nc in zip(examples, cc.rows(), nc.rows()):
        want_cc, want_nc = ref_co_click(clicks, ex, top_k), ref_next_click(clicks, ex)
        assert list(got_cc.items()) == list(want_cc.items()), ex.impression
        assert list(got_nc.items()) == list(want_nc.items()), ex.impression
    for block in (cc, nc):  # the hashed form is the rows', hashed
        got, want = block.hashed(12), hash_rows(block.rows(), 12)
        assert got.indptr.tolist() == want.indptr.tolist()
        assert got.indices.tolist() == want.indices.tolist() and np.allclose(got.data, want.data)


@pytest.mark.parametrize("seed", range(6))
def test_click_probes_match_their_definition_on_random_logs(seed):
    rng = random.Random(seed)
    log, clicks = _random_log(rng, 600, users=40, items=25)
    _check(log, clicks, _examples(rng, clicks, 300, 40, 25), top_k=1 + seed % 5)


def test_a_viral_item_counts_its_first_clickers_only():
    rng = random.Random(11)
    log, clicks = _random_log(rng, 3_000, users=400, items=30, viral=True)
    examples = [LabelledExample(Impression(impression_id=f"v{k}", ts=t, user_id="u1", item_id="viral",
                                           experiment="e", arm="a"), 0, None, t) for k, t in enumerate(range(0, 300, 7))]
    rows = CoClickProbe().columns(examples, log, H).rows()
    assert max(r["cc:log_users"] for r in rows) == pytest.approx(math.log1p(MAX_USERS))
    _check(log, clicks, examples)


def test_clicks_added_between_releases_are_found_by_the_next_one():
    rng = random.Random(5)
    log, clicks = _random_log(rng, 200, users=20, items=10)
    _check(log, clicks, _examples(rng, clicks, 100, 20, 10))
    for k in range(200):  # earlier and later than what is merged
        c = (f"u{rng.randrange(20)}", f"i{rng.randrange(10)}", rng.randrange(0, 400), f"late{k}")
        log.add_click(*c)
        clicks.append(c)
    _check(log, clicks, _examples(rng, clicks, 100, 20, 10))


def test_a_prune_reclaims_codes_and_answers_stay_right():
    rng = random.Random(3)
    log = BehaviourLog()
    clicks = []
    for k in range(4_000):  # thousands of one-off users and items, then a few regulars
        c = (f"once{k}", f"item{k}", k // 20, f"o{k}")
        log.add_click(*c)
        clicks.append(c)
    for k in range(300):
        c = (f"u{rng.randrange(15)}", f"i{rng.randrange(8)}", 300 + rng.randrange(100), f"r{k}")
        log.add_click(*c)
        clicks.append(c)
    log.prune(250)
    clicks = [c for c in clicks if c[2] > 250]
    assert len(log.clicks.users.names) < 100 and len(log.clicks.items.names) < 100  # codes reclaimed
    assert log.clicked == {iid: ts for _, _, ts, iid in clicks}
    examples = _examples(rng, clicks, 200, 15, 8)
    _check(log, clicks, examples)


def test_a_log_checkpointed_with_unmerged_clicks_resumes_the_same():
    rng = random.Random(8)
    log, clicks = _random_log(rng, 300, users=20, items=12)
    _check(log, clicks, _examples(rng, clicks, 50, 20, 12))  # merged once
    for k in range(50):
        c = (f"u{rng.randrange(20)}", f"i{rng.randrange(12)}", rng.randrange(0, 400), f"n{k}")
        log.add_click(*c)
        clicks.append(c)
    restored = pickle.loads(pickle.dumps(log))
    examples = _examples(rng, clicks, 200, 20, 12)
    _check(restored, clicks, examples)
    _check(log, clicks, examples)


def test_an_empty_log_leaks_nothing():
    ex = [LabelledExample(Impression(impression_id="i", ts=0, user_id="u", item_id="a", experiment="e", arm="c"),
                          0, None, 0)]
    log = BehaviourLog()
    assert CoClickProbe().columns(ex, log, H).rows() == [{}]
    assert NextClickProbe().columns(ex, log, H).rows() == [{}]


def test_an_impression_id_clicked_twice_is_left_out_entirely():
    """An id that comes back after the join forgot it: neither of its clicks may leak its label."""
    log, clicks = BehaviourLog(), [("u", "a", 60, "x"), ("u", "b", 70, "y"), ("u", "a", 90, "x"), ("w", "a", 80, "z")]
    for c in clicks:
        log.add_click(*c)
    imp = Impression(impression_id="x", ts=50, user_id="u", item_id="a", experiment="e", arm="c")
    ex = [LabelledExample(imp, 1, 60, 60)]
    assert NextClickProbe().columns(ex, log, H).rows() == [{"nc:any": 1.0, "nc:item=b": 1.0}]
    _check(log, clicks, ex)
    log.add_click("u", "c", 75, "x")  # arrives last, dated between the two: a prune keeps the id
    log.prune(80)
    assert log.clicked == {"x": 90} and log.item_clicks("a", 0, 200) == [(90, "u", "x")]


def test_an_early_dated_first_click_does_not_blind_the_probes():
    """A first click dated decades before the rest (a test record, seconds for milliseconds)
    moves the event-time base instead of clipping every later click to one instant; the
    stray click itself falls out of every window."""
    t0 = 1_767_225_600_000
    log, clicks = BehaviourLog(), [("u0", "old", 5, "o")]
    log.add_click(*clicks[0])
    _check(log, clicks, _examples(random.Random(1), clicks, 5, 3, 3))  # merged with the early base
    rng = random.Random(2)
    for k in range(300):
        c = (f"u{rng.randrange(10)}", f"i{rng.randrange(6)}", t0 + rng.randrange(400), f"c{k}")
        log.add_click(*c)
        clicks.append(c)
    examples = [LabelledExample(Impression(impression_id=f"e{k}", ts=t0 + rng.randrange(-50, 350), user_id=f"u{k % 10}",
                                           item_id=f"i{k % 6}", experiment="e", arm="a"), 0, None, 0) for k in range(100)]
    _check(log, clicks[1:], examples)
    assert any(CoClickProbe().columns(examples, log, H).rows())
    assert log.item_clicks("old", 0, 10) == []


def test_codes_renumbered_while_a_click_is_added_stay_consistent(monkeypatch):
    """A full code table is compacted before the new click's codes are looked up."""
    import stream_lis.probes.click_log as click_log

    monkeypatch.setattr(click_log, "MAX_KEY", 6)
    rng = random.Random(9)
    log, clicks = BehaviourLog(), []
    for k in range(200):
        c = (f"u{rng.randrange(12)}", f"i{rng.randrange(9)}", k * 2, f"c{k}")
        log.add_click(*c)
        clicks.append(c)
        if k % 25 == 24:
            log.prune(k * 2 - 40)
            clicks = [x for x in clicks if x[2] > k * 2 - 40]
            _check(log, clicks, _examples(rng, clicks, 30, 12, 9))
    assert len(log.clicks.users.names) < 20


def test_window_counts_survive_an_early_dated_first_event():
    from stream_lis.probes.window_index import WindowIndex

    t0 = 1_767_225_600_000
    idx = WindowIndex()
    idx.add(1, 5)
    assert idx.count(np.array([1]), np.array([0]), np.array([10])).tolist() == [1]
    idx.add(1, t0)
    idx.add(1, t0 + 10)
    idx.add(2, t0 + 5)
    assert idx.count(np.array([1, 1, 2, 1]), np.array([t0 - 1, 0, t0, t0]),
                     np.array([t0 + 10, 10, t0 + 5, t0 + 9])).tolist() == [2, 0, 1, 0]  # the stray one is out
    idx.add(1, t0 - 20)  # older than the base's centre, within the bits: it fits
    assert idx.count(np.array([1]), np.array([t0 - 21]), np.array([t0])).tolist() == [2]
    idx.prune(t0 + 10)
    assert len(idx) == 0 and idx.base is None


def test_a_click_shed_from_the_log_is_not_left_out_of_future_item_twice():
    """``shed_oldest`` can drop clicks inside a waiting example's window: its own click then
    leaves the counts and the clicked ids together, or future_item subtracts a click it never
    counted (a negative CTR lift on the old code's view of it)."""
    from stream_lis.probes import FutureItemProbe
    from stream_lis.probes.log import BehaviourLog

    def filled() -> BehaviourLog:
        log = BehaviourLog()
        for k in range(10):
            log.add_impression("a", 101 + k)
        log.add_click("u0", "a", 105, "x0")
        for k in range(5):
            log.add_click(f"u{k + 1}", "a", 120 + k, f"y{k}")
        return log

    log = filled()
    log.shed_oldest(8)
    kept_ts = set(log.clks.times(0).tolist())
    assert 105 not in kept_ts and "x0" not in log.clicked
    # the same log built from what the shed kept
    fresh = BehaviourLog()
    for t in log.imps.times(0).tolist():
        fresh.add_impression("a", t)
    for k in range(5):
        if 120 + k in kept_ts:
            fresh.add_click(f"u{k + 1}", "a", 120 + k, f"y{k}")
    imp = Impression(impression_id="x0", ts=100, user_id="u0", item_id="a", experiment="e", arm="c")
    ex = [LabelledExample(imp, 1, 105, 105)]
    assert FutureItemProbe().leaked(ex, log, H) == FutureItemProbe().leaked(ex, fresh, H)


def test_a_click_log_checkpointed_before_the_prune_heap_prunes_its_ids():
    from stream_lis.probes.click_log import ClickLog

    log = ClickLog()
    for k, ts in enumerate((10, 20, 30)):
        log.add("u", "a", ts, f"i{k}")
    state = log.__getstate__()
    del state["_by_time"]  # the layout of older checkpoints
    old = ClickLog.__new__(ClickLog)
    old.__setstate__(state)
    restored = pickle.loads(pickle.dumps(old))
    restored.prune(20)
    assert restored.clicked == {"i2": 30} and len(restored) == 1
