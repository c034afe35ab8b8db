"""A Kafka worker's counters live in its partitions' checkpointed state and move with them on
a rebalance. Exported as one total per worker they would drop on the worker that lost a
partition (Prometheus reads a drop as a counter reset, and `rate` as a burst) and jump on the
one that took it; exported per partition, each series carries on wherever its partition is.
The embedded runtime has no partitions and keeps unlabelled totals."""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream_lis.config import Config
from stream_lis.engine import Counters, Engine, Snapshot
from stream_lis.events import REASONS
from stream_lis.exporter import SnapshotCollector
from stream_lis.join import CLICK_OUTCOMES


def _scrape(snap: Snapshot) -> dict[str, list]:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SnapshotCollector(lambda: snap))
    out: dict[str, list] = {}
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        for s in fam.samples:
            out.setdefault(s.name, []).append(s)
    return out


def _counters(records: int, late: int, shed: int = 0) -> Counters:
    return Counters(invalid=Counter({"late_event": late}), records=records, label_delay=[records] + [0] * 9,
                    shed=Counter({"lookahead": shed}))


def _worker(join: dict[int, Counters], ev: dict[int, Counters]) -> Snapshot:
    total = Counters(records=sum(c.records for c in join.values()))
    return Snapshot(arms=[], counters=total, watermark_ms=0, max_event_ms=0, pending_impressions=0, held_examples=0,
                    probes=[], learner_names=[], partition_counters={"join": join, "eval": ev})


def _by_partition(m: dict, name: str, **labels: str) -> dict[str, float]:
    return {s.labels["partition"]: s.value for s in m[name] if all(s.labels.get(k) == v for k, v in labels.items())}


def test_a_partition_moving_between_workers_keeps_one_growing_series():
    # worker A owns input partitions 0 and 1; then 1 moves to worker B and grows there
    a = _scrape(_worker({0: _counters(100, 3), 1: _counters(50, 1)}, {0: _counters(0, 0, shed=7)}))
    b = _scrape(_worker({1: _counters(60, 2)}, {1: _counters(0, 0, shed=2)}))
    a_after = _scrape(_worker({0: _counters(120, 3)}, {0: _counters(0, 0, shed=7)}))

    assert _by_partition(a, "stream_lis_records_total") == {"0": 100, "1": 50}
    assert _by_partition(a_after, "stream_lis_records_total") == {"0": 120}  # no drop: 1's series just ends here
    assert _by_partition(b, "stream_lis_records_total") == {"1": 60}  # and carries on there, from 50
    assert _by_partition(a, "stream_lis_invalid_events_total", reason="late_event") == {"0": 3, "1": 1}
    assert _by_partition(a, "stream_lis_shed_total", bound="lookahead") == {"0": 7}
    assert _by_partition(b, "stream_lis_shed_total", bound="lookahead") == {"1": 2}
    assert _by_partition(a, "stream_lis_label_delay_seconds_count") == {"0": 100, "1": 50}
    assert _by_partition(a, "stream_lis_experiments_ended_total") == {"0": 0}


def test_the_embedded_runtime_exports_unlabelled_totals():
    eng = Engine(Config())
    eng.process_records([b'{"type":"click","impression_id":"x","ts":5}', b'not json'])
    eng.flush()
    m = _scrape(eng.snapshot())
    [rec] = m["stream_lis_records_total"]
    assert rec.labels == {} and rec.value == 1
    invalid = {s.labels["reason"]: s.value for s in m["stream_lis_invalid_events_total"]}
    # every reason and click outcome exported, from 0: a series born at its first count already
    # holds it, and increase() / rate() would miss the first burst of a new reason
    assert invalid == {reason: 1 if reason == "unparseable" else 0 for reason in REASONS}
    joins = {s.labels["outcome"]: s.value for s in m["stream_lis_click_joins_total"]}
    assert joins == {outcome: 1 if outcome == "orphan" else 0 for outcome in CLICK_OUTCOMES}
