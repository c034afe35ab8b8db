"""A Kafka client stuck after a broker stall must not hang the worker or its /metrics.

kafka-python was seen waiting in ``producer.flush()`` for good after a broker came back
from a stall, while the join stage held its state's lock: every scrape then hung too (and
piled up threads), so nothing said the worker was stuck. Now a flush is bounded by the
producer's own delivery timeout (plus a grace), and its end stops the stage (the restart
resumes from the last checkpoint); a scrape that cannot take a stage's state in time is
answered 503 with the reason, and /healthz still answers.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import pytest
from kafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

import stream_lis.runtime.kafka.worker as worker_mod
from stream_lis.exporter import MetricsServer
from stream_lis.runtime.kafka.delivery import FLUSH_GRACE_S, Delivery, DeliveryFailed


def test_a_flush_that_never_ends_stops_the_stage_after_the_delivery_timeout():
    asked = []

    class StuckProducer:
        config = {"delivery_timeout_ms": 45_000}

        def flush(self, timeout=None):
            asked.append(timeout)
            raise KafkaTimeoutError("Timeout waiting for future")

    with pytest.raises(DeliveryFailed, match=r"has not finished sending after 75 s, past its delivery_timeout_ms"):
        Delivery().flush(StuckProducer())
    assert asked == [45 + FLUSH_GRACE_S]


def test_a_checkpoint_is_put_off_while_sends_wait_and_the_stage_stops_once_they_never_end(monkeypatch):
    import stream_lis.runtime.kafka.delivery as delivery_mod

    monkeypatch.setattr(delivery_mod, "FLUSH_GRACE_S", 0.0)
    done = []

    class SlowProducer:
        config = {"delivery_timeout_ms": 300}

        def flush(self, timeout=None):
            if done:
                return
            time.sleep(min(timeout, 0.05))
            raise KafkaTimeoutError("Timeout waiting for future")

    d, p = Delivery(), SlowProducer()
    assert d.try_flush(p, 0.05) is False  # put off: the stage goes on
    done.append(True)
    assert d.try_flush(p, 0.05) is True  # the broker took them: the checkpoint goes ahead
    done.clear()
    assert d.try_flush(p, 0.05) is False
    time.sleep(0.4)  # past the producer's delivery timeout, its sends have not ended
    with pytest.raises(DeliveryFailed, match="has not finished sending for 0.3 s"):
        d.try_flush(p, 0.05)


def test_a_scrape_of_a_stage_holding_its_state_is_answered_503_and_health_still_answers(monkeypatch):
    monkeypatch.setattr(worker_mod, "SCRAPE_WAIT_S", 0.3)
    lock = threading.Lock()

    class Collector:
        def collect(self):
            with worker_mod._held(lock, "join"):
                g = GaugeMetricFamily("stream_lis_ready", "ready")
                g.add_metric([], 1.0)
                yield g

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    server = MetricsServer(registry, 0, "127.0.0.1")
    url = f"http://127.0.0.1:{server.port}"
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            assert r.status == 200 and b"stream_lis_ready 1.0" in r.read()
        lock.acquire()  # the stage holds its state (a flush waiting on the broker, say)
        try:
            t0 = time.monotonic()
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(url + "/metrics", timeout=5)
            assert err.value.code == 503 and time.monotonic() - t0 < 3
            assert b"the join stage has held its state for over 0.3 s" in err.value.read()
            with urllib.request.urlopen(url + "/healthz", timeout=5) as r:
                assert r.status == 200
        finally:
            lock.release()
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:  # and answers again once it is free
            assert r.status == 200
    finally:
        server.close()
