"""The broker stops answering for longer than the Kafka client's 30 s request timeouts (a
stalled or restarting broker, a network partition): the worker rides it out, says so in
its log, and when the broker answers again goes on where it was: every impression counted
once, nothing lost, no restart needed. Its /metrics answers meanwhile, and its loops go
round: /healthz stays ok with a stall timeout a quarter of the outage (an outage must not
have Kubernetes restart every worker at once)."""

from __future__ import annotations

import time

import pytest

from kafka_harness import (WorkerProc, broker_frozen, broker_pid, counted_once, fresh_input,
                           replay_in_background, require_broker, total, wait_for)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

FROZEN_S = 40


def test_worker_survives_a_broker_frozen_past_the_client_timeouts(tmp_path):
    require_broker()
    pid = broker_pid()
    ov, path, n_imps = fresh_input(tmp_path, 12_000, seed=9)
    ov = {**ov, "kafka.stall_timeout": f"{FROZEN_S // 4}s"}
    worker = WorkerProc(ov, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        replay = replay_in_background(path, ov, rate=1500)
        wait_for(lambda: total(worker.metrics(), "stream_lis_labelled_examples_total") >= 500, 120,
                 "labels before the broker freezes", worker.alive)
        said, scrapes, health = set(), [], []
        with broker_frozen(pid):
            deadline = time.monotonic() + FROZEN_S
            while time.monotonic() < deadline:
                worker.alive()  # the worker must not give up while the broker is away
                status, _ = worker.get("/metrics")
                scrapes.append(status)
                health.append(worker.get("/healthz")[0])
                m = worker.metrics() if status == 200 else {}
                if m:
                    said.add(total(m, "stream_lis_broker_answering"))
                time.sleep(1)
        # /metrics answers while the broker is away (a stage waiting on it does not hold the
        # scrape), and says so (alert KafkaBrokerNotAnswering)
        assert scrapes.count(200) >= len(scrapes) / 2, scrapes
        assert 0.0 in said, (said, scrapes)
        replay.join(300)
        # and while the group comes back (rejoins, restores): /healthz is sampled at each look
        m = counted_once(worker, n_imps, 240, "every impression labelled after the broker came back",
                         lambda: (worker.alive(), health.append(worker.get("/healthz")[0])))
        assert health == [200] * len(health), health
        assert total(m, "stream_lis_broker_answering") == 1.0
        log = worker.log.read_text()
        assert "stage failed" not in log, log[-3000:]
        assert "the broker does not answer" in log and "the broker answers again" in log
    finally:
        worker.stop()
