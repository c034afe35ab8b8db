"""The impressions and clicks topics must have as many partitions: the join reads partition p
of both together, so with different counts most clicks would never meet their impression and
the CTR and every AUC would be biased, silently. `topics create` says so, and a worker running
the join stage refuses to start, in one line."""

from __future__ import annotations

import subprocess

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from kafka_harness import BOOTSTRAP, CLI, WorkerProc, cli, free_port, namespace, require_broker, set_args, wait_for

pytestmark = [pytest.mark.kafka]


def test_topics_of_different_partition_counts_are_refused(tmp_path):
    require_broker()
    ov = namespace()
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        admin.create_topics([NewTopic(ov["kafka.topics.impressions"], 4, 1), NewTopic(ov["kafka.topics.clicks"], 2, 1)])
    finally:
        admin.close()
    created = cli("topics", "create", ov=ov)
    err = created.stderr.decode()
    assert created.returncode == 1, err
    assert "has 4 partitions" in err and "2:" in err and "must have the same number" in err
    worker = subprocess.run([*CLI, "worker", "--bootstrap", BOOTSTRAP, "--port", str(free_port()), "--host",
                             "127.0.0.1", *set_args(ov)], capture_output=True, timeout=120)
    err = worker.stderr.decode()
    assert worker.returncode == 2, err[-2000:]
    assert "must have the same number" in err and "Traceback" not in err
    # an evaluation-only process has no join to bias: it starts and serves
    ev = WorkerProc(ov, tmp_path / "eval.log", stage="eval")
    try:
        # ready, not only alive: /healthz answers ok while a worker still waits for its broker
        wait_for(lambda: ev.get("/readyz")[0] == 200, 90, "the evaluation-only worker ready", ev.alive)
    finally:
        ev.stop()


def test_copartitioned_topics_pass():
    require_broker()
    ov = namespace({"kafka.partitions": 3})
    created = cli("topics", "create", ov=ov)
    assert created.returncode == 0, created.stderr.decode()
    assert b"must have the same number" not in created.stderr
