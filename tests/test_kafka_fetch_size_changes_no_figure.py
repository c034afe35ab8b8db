"""How the worker fetches its input (``kafka.max_poll_records``, and so how records are
batched into releases) is transport, not semantics: the same input gives the same counts.

The join merges a partition's impressions and clicks by event time. It used to sort each
release by event time, which put a late record before the newer ones released with it: an
impression late by the input's own order was accepted or rejected depending on the fetch.
The simulator's stream holds such late records."""

from __future__ import annotations

from collections import Counter

import pytest

from kafka_harness import WorkerProc, cli, namespace, require_broker, settled, wait_for, write_stream

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _figures(m: dict) -> dict:
    def by(name: str, *labels: str) -> Counter:
        out: Counter = Counter()
        for s in m.get(name, []):
            out[tuple(s.labels.get(k) for k in labels)] += s.value
        return +out

    return {"invalid": by("stream_lis_invalid_events_total", "reason"),
            "clicks": by("stream_lis_click_joins_total", "outcome"),
            "labelled": by("stream_lis_labelled_examples_total", "arm", "label"),
            "records": by("stream_lis_records_total")}


def _run(ov: dict, n_imps: int, log) -> dict:
    assert cli("topics", "create", ov=ov).returncode == 0
    worker = WorkerProc(ov, log)
    try:
        worker.wait_ready()
        wait_for(settled(worker, n_imps), 240, "every impression accounted for", worker.alive)
        return _figures(worker.metrics())
    finally:
        worker.stop()


def test_the_same_input_gives_the_same_counts_whatever_the_fetch_size(tmp_path):
    require_broker()
    first = namespace()
    path = tmp_path / "events.jsonl"
    n_imps = write_stream(path, 12_000, seed=5)
    assert cli("topics", "create", ov=first).returncode == 0
    assert cli("replay", str(path), ov=first, timeout=300).returncode == 0  # all of it, before any worker reads
    inputs = {k: first[k] for k in ("kafka.topics.impressions", "kafka.topics.clicks")}
    small = _run({**first, "kafka.max_poll_records": 37}, n_imps, tmp_path / "small.log")
    large = _run({**namespace(), **inputs, "kafka.max_poll_records": 2000}, n_imps, tmp_path / "large.log")
    assert small["invalid"].get(("late_event",), 0) > 0, small  # the stream holds late records
    assert small == large
