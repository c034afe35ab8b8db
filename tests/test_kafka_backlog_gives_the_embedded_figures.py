"""A worker started on a backlog (a restart, a lagging group, a backfill) gives the embedded
runtime's figures, LIS included.

Caught up from a backlog, the join stage sends each batch's records in many messages; when
every message carried the watermark reached at the batch's end, the evaluation stage
released examples before the later messages (their future window's impressions and
clicks) were read: the probes saw a cut-off behaviour log and LIS came out about 20% low,
within the live-replay test's tolerance. Here the whole stream is in the topics before the
worker starts, and LIS must match closely.
"""

from __future__ import annotations

import json

import pytest

from stream_lis.simulator import Simulator, SimulatorConfig

from kafka_harness import WorkerProc, by_arm, cli, namespace, require_broker, total, wait_for
from test_kafka_produce_matches_embedded import HOLD, embedded

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

IMPRESSIONS = 40_000
#: The worker and the embedded runtime see the same examples in the same order (on a backlog
#: the partitions' clocks follow the data); LIS differed by 0.004 and 0.006 before the fix.
LIS_TOL = 0.0015


def test_a_backlog_gives_the_embedded_lis(tmp_path):
    require_broker()
    path = tmp_path / "events.jsonl"
    with open(path, "w") as fh:
        for ev in Simulator(SimulatorConfig(impressions=IMPRESSIONS, seed=11)).events():
            fh.write(json.dumps(ev) + "\n")
    ov = namespace(HOLD)
    assert cli("topics", "create", ov=ov).returncode == 0
    rep = cli("replay", str(path), ov=ov, timeout=300)
    assert rep.returncode == 0, rep.stderr.decode()
    ref = embedded(path, ov)
    expected = sum(a.labelled for a in ref.arms)
    worker = WorkerProc(ov, tmp_path / "worker.log")
    try:
        worker.wait_ready()

        def done() -> bool:
            m = worker.metrics()
            return total(m, "stream_lis_held_examples") == 0 and total(m, "stream_lis_pending_impressions") == 0 \
                and total(m, "stream_lis_labelled_examples_total") >= expected * 0.995

        wait_for(done, 240, "the worker to label and evaluate the backlog", worker.alive)
        m = worker.metrics()
        got = by_arm(m["stream_lis_labelled_examples_total"])
        for a in ref.arms:
            assert got[a.arm] == pytest.approx(a.labelled, rel=0.005)
            lis = {s.labels["probe"]: s.value for s in m["stream_lis_lis"] if s.labels["arm"] == a.arm}
            for probe, iv in a.lis.items():
                assert lis[probe] == pytest.approx(iv.value, abs=LIS_TOL), (a.arm, probe, lis[probe], iv.value)
    finally:
        worker.stop()
