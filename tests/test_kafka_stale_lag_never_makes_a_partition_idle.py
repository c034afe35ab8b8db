"""During a broker outage a partition is neither idle nor read to its end.

The join stage moves an idle partition's clock on by the wall clock, and counts a topic
read to its end as done (the other topic's records are released without waiting for it).
Both read the last consumer lag measured. During an outage that measurement stays as it
was, 0 on a live stream between bursts, while producers' records wait on the broker: the
clock moved on, and when the broker answered again those records came out late (seen
with a 45 s outage and a live producer). A lag only says where the input stands while the
broker answers and the measurement is recent.
"""

from __future__ import annotations

import time
from collections import deque
from types import SimpleNamespace

import pytest

from stream_lis.runtime.kafka import join_stage
from stream_lis.runtime.kafka.join_stage import JoinStage


def _stage(answering: bool, measured_ago: float) -> JoinStage:
    """A join stage's idleness state for partition 0: input read 30 s ago, lag 0 since."""
    st = JoinStage.__new__(JoinStage)  # the decision alone: no consumer, no broker
    now = time.monotonic()
    st.t = SimpleNamespace(impressions="imps", clicks="clicks")
    st.last_input = {0: now - 30}
    st._lag_at = now - measured_ago
    st.lag = {("imps", 0): 0, ("clicks", 0): 0}
    st.held = {0: {"imps": deque(), "clicks": deque()}}
    st._idle_s = 10.0
    st.lag_meter = SimpleNamespace(answering=answering)
    return st


def test_a_partition_read_to_its_end_is_idle_after_the_timeout():
    assert _stage(answering=True, measured_ago=0.1)._idle(0)


@pytest.mark.parametrize("answering, measured_ago", [(False, 0.1), (False, 25.0), (True, 25.0)],
                         ids=["broker_not_answering", "outage_since_the_last_measurement", "measurement_stale"])
def test_a_lag_from_before_an_outage_does_not_make_it_idle(answering, measured_ago):
    assert measured_ago > join_stage.LAG_CURRENT_S or not answering
    assert not _stage(answering, measured_ago)._idle(0)
