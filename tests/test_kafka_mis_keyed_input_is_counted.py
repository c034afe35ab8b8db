"""Input records not keyed by their impression id are still joined, but counted by topic and
kind and logged: on a multi-partition topic their clicks can land away from their impressions,
which would otherwise only show as orphan clicks."""

from __future__ import annotations

import json

import pytest
from kafka import KafkaProducer

from stream_lis.simulator import Simulator, SimulatorConfig

from kafka_harness import BOOTSTRAP, WorkerProc, cli, namespace, require_broker, settled, total, wait_for

pytestmark = [pytest.mark.kafka]


def _settled_metrics(ov: dict, tmp_path, n_imps: int) -> dict:
    """A worker's metrics once it has accounted for every impression (its log: worker.log)."""
    worker = WorkerProc(ov, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        wait_for(settled(worker, n_imps), 120, "every impression to be counted", worker.alive)
        return worker.metrics()
    finally:
        worker.stop()


def test_unkeyed_and_otherwise_keyed_records_are_counted_and_logged(tmp_path):
    require_broker()
    ov = namespace()
    imps_topic, clicks_topic = ov["kafka.topics.impressions"], ov["kafka.topics.clicks"]
    events = list(Simulator(SimulatorConfig(impressions=2000, seed=4)).events())
    assert cli("topics", "create", ov=ov).returncode == 0
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    n_imps = unkeyed = other = n_clicks = 0
    for e in events:
        value, iid = json.dumps(e).encode(), e["impression_id"].encode()
        if e["type"] == "impression":
            n_imps += 1
            key = None if n_imps % 10 == 0 else iid  # every tenth impression unkeyed
            unkeyed += key is None
            producer.send(imps_topic, value, key=key)
        else:
            n_clicks += 1
            key = b"user-or-session" if n_clicks % 7 == 0 else iid  # every seventh click keyed otherwise
            other += key != iid
            producer.send(clicks_topic, value, key=key)
    producer.flush()
    producer.close()
    assert unkeyed > 100 and other > 10

    m = _settled_metrics(ov, tmp_path, n_imps)
    name = "stream_lis_input_key_mismatch_total"
    assert total(m, name, topic=imps_topic, kind="unkeyed") == unkeyed
    assert total(m, name, topic=clicks_topic, kind="other_key") == other
    assert total(m, name) == unkeyed + other  # correctly keyed records are not counted
    log = (tmp_path / "worker.log").read_text()
    assert f"{imps_topic}/" in log and "is unkeyed, not by its impression_id" in log, log[-2000:]
    assert "is keyed b'user-or-session', not by its impression_id" in log, log[-2000:]


def test_with_input_keys_any_only_unkeyed_records_are_counted(tmp_path):
    """Producers that key both topics alike by another field (a user id) co-partition each click
    with its impression just as well: with ``kafka.input_keys = "any"`` those keys are not
    counted, but a record without a key still is (it may land on any partition)."""
    require_broker()
    ov = {**namespace(), "kafka.input_keys": "any"}
    imps_topic, clicks_topic = ov["kafka.topics.impressions"], ov["kafka.topics.clicks"]
    events = list(Simulator(SimulatorConfig(impressions=2000, seed=4)).events())
    user_of = {e["impression_id"]: e["user_id"] for e in events if e["type"] == "impression"}
    assert cli("topics", "create", ov=ov).returncode == 0
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    n_imps = unkeyed = 0
    for e in events:
        value = json.dumps(e).encode()
        user = user_of.get(e["impression_id"])
        if e["type"] == "impression":
            n_imps += 1
            key = None if n_imps % 10 == 0 else user.encode()  # every tenth impression unkeyed
            unkeyed += key is None
            producer.send(imps_topic, value, key=key)
        elif user is not None:  # clicks keyed by their impression's user
            producer.send(clicks_topic, value, key=user.encode())
    producer.flush()
    producer.close()
    assert unkeyed > 100

    m = _settled_metrics(ov, tmp_path, n_imps)
    name = "stream_lis_input_key_mismatch_total"
    assert total(m, name, topic=imps_topic, kind="unkeyed") == unkeyed
    assert total(m, name) == unkeyed  # user-keyed records, on both topics, are not counted
    assert total(m, "stream_lis_click_joins_total", outcome="attributed") > 50  # they still join
