"""After a restart the join stage repeats records from its last checkpoint; the evaluation stage
applies each (kind, impression) once, forgets them once no repeat can come, and reads the
remembered set from a checkpoint written by the previous layout."""

from __future__ import annotations

import pickle
from collections import deque

from stream_lis.runtime.kafka.eval_stage import CLICKED, LABELLED, SEEN, Dedupe


def test_each_kind_of_an_impression_is_applied_once():
    d = Dedupe(margin_ms=100)
    assert d.first(SEEN, "i1", 1000)
    assert not d.first(SEEN, "i1", 1000)
    assert d.first(CLICKED, "i1", 1000) and d.first(LABELLED, "i1", 1000)
    assert not d.first(CLICKED, "i1", 1000) and not d.first(LABELLED, "i1", 1000)
    assert d.first(SEEN, "i2", 1050)


def test_prune_forgets_impressions_older_than_the_floor_minus_the_margin():
    d = Dedupe(margin_ms=100)
    d.first(SEEN, "old", 1000)
    d.first(SEEN, "new", 1200)
    d.prune(1100)  # limit 1000: nothing is older
    assert not d.first(SEEN, "old", 1000)
    d.prune(1101)
    assert d.first(SEEN, "old", 1000)  # forgotten: applied again
    assert not d.first(SEEN, "new", 1200)


def test_checkpoint_of_the_pair_layout_resumes_with_the_same_answers():
    old = Dedupe.__new__(Dedupe)
    old.__dict__.update(keep_ms=100, seen={("s", "a"), ("l", "a"), ("s", "b")},
                        order=deque([(10, "s", "a"), (20, "s", "b"), (30, "l", "a")]))
    d = pickle.loads(pickle.dumps(old))
    assert not d.first(SEEN, "a", 10) and not d.first(LABELLED, "a", 10) and not d.first(SEEN, "b", 20)
    assert d.first(CLICKED, "a", 10) and d.first(LABELLED, "b", 20)
    d.prune(115)  # limit 15: "a" (ts 10) goes, "b" stays
    assert d.first(SEEN, "a", 10) and not d.first(SEEN, "b", 20)


def test_a_checkpoint_holds_the_table_as_frozen_while_the_stage_goes_on():
    # The checkpoint copies the table while the stage holds still and pickles the copy later,
    # on the saver's thread: what the stage applies meanwhile must not leak into it.
    d = Dedupe(margin_ms=100)
    d.first(SEEN, "a", 10)
    d.first(SEEN, "b", 20)
    frozen = d.frozen()
    d.first(LABELLED, "a", 10)
    d.first(SEEN, "c", 30)
    d.prune(125)  # the live table forgets "a"
    restored = pickle.loads(pickle.dumps({"dedupe": frozen}))["dedupe"]
    assert (restored.seen, list(restored.order), restored.keep_ms) == ({"a": SEEN, "b": SEEN}, [(10, "a"), (20, "b")], 100)
    assert restored.first(LABELLED, "a", 10) and not restored.first(SEEN, "a", 10)
    assert restored.first(SEEN, "c", 30)
