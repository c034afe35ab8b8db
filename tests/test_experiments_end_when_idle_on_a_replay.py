"""An experiment with no event for ``time.experiment_idle_timeout`` ends, on a replay too.

A replay cuts chunks by count and never flushes an arm's partial chunk on a timer; that chunk
must not hold the experiment open, or its arms keep their slots of ``limits.max_arms`` and a
later experiment's impressions are shed.
"""

from __future__ import annotations

from _helpers import imp, small_cfg
from stream_lis.engine import Engine


def test_an_idle_experiment_with_a_partial_chunk_ends_and_frees_its_arms() -> None:
    cfg = small_cfg(**{"limits.max_arms": 2, "time.experiment_idle_timeout": "10s", "learner.batch_size": 64})
    dead = []
    eng = Engine(cfg, on_invalid=lambda inv, src: dead.append(inv.reason))
    # "early": two arms for 20 s, 100 impressions each (a partial chunk of 64 left in each).
    eng.process([imp(f"e{k}{arm}", 200 * k, user=f"u{k % 7}", item=f"i{k % 5}", experiment="early", arm=arm)
                 for k in range(100) for arm in ("a", "b")])
    # "late" starts 30 s after early's last impression and goes on for a minute.
    eng.process([imp(f"l{k}{arm}", 50_000 + 200 * k, user=f"u{k % 7}", item=f"i{k % 5}", experiment="late", arm=arm)
                 for k in range(300) for arm in ("c", "d")])
    eng.flush()
    ended = eng.ended
    assert set(ended) >= {("early", "a"), ("early", "b")}
    assert all(ended[("early", arm)].labelled == 100 for arm in ("a", "b"))  # the partial chunk evaluated
    assert eng.armset.experiments_ended >= 1
    # only the first impressions of "late", before early's arms went idle, could be shed
    assert dead.count("shed_overload") < 60
    late = {(st.experiment, st.arm): st for st in eng.snapshot().arms}
    late.update({k: v for k, v in ended.items() if k[0] == "late"})
    assert sum(late[("late", arm)].impressions for arm in ("c", "d")) == 600 - dead.count("shed_overload")
