"""``stream_lis_consumer_lag`` says which of the worker's loops reads each topic: the join
stage the input topics, the evaluation stage the labelled topic (whose messages are
envelopes of many records, so ``ConsumerLagHigh`` holds it to a threshold of its own), a side
table its topic. Without the label an alert cannot tell envelopes from records."""

from __future__ import annotations

import pytest

from kafka_harness import WorkerProc, cli, namespace, require_broker, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _loops(worker: WorkerProc) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in worker.metrics().get("stream_lis_consumer_lag", []):
        out.setdefault(s.labels["topic"], set()).add(s.labels.get("loop", "(none)"))
    return out


def test_each_topics_lag_is_labelled_with_the_loop_reading_it(tmp_path):
    require_broker()
    ov = namespace({"kafka.partitions": 2, "probes.enabled": ["future_item", "external"],
                    "probes.external.from_topic": True, "embeddings.from_topic": True})
    assert cli("topics", "create", ov=ov).returncode == 0
    worker = WorkerProc(ov, tmp_path / "worker.log")
    t = {name: ov[f"kafka.topics.{name}"] for name in ("impressions", "clicks", "labelled", "preferences", "embeddings")}
    expected = {t["impressions"]: {"join"}, t["clicks"]: {"join"}, t["labelled"]: {"eval"},
                t["preferences"]: {"preferences"}, t["embeddings"]: {"embeddings"}}
    try:
        worker.wait_ready()
        wait_for(lambda: set(_loops(worker)) >= set(expected), 30, "a lag for every topic the worker reads",
                 worker.alive)
        assert _loops(worker) == expected
    finally:
        worker.stop()
