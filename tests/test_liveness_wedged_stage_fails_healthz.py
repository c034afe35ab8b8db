"""A worker whose stage is wedged fails ``/healthz``, so Kubernetes restarts it.

A stage stuck in one call (a client call that never returns, a lock never released) used to
leave the worker answering ``/healthz`` with 200 for good: the process was up, its partitions
owned and unprocessed, and nothing restarted it. Each loop now beats a pulse as it goes round
(and while it restores a checkpoint); ``/healthz`` answers 503, naming the loop, once one has
not gone round for ``kafka.stall_timeout``, and 200 again when it does. A stopping loop is
left out (its final checkpoint has bounds of its own). Checked on an in-process worker
against the real broker, with its join stage held inside its loop; and waiting for a side
topic that does not exist yet, which is no stall.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from kafka_harness import BOOTSTRAP, cli, healthz, namespace, require_broker, wait_for
from stream_lis.config import ConfigError, load_config
from stream_lis.exporter import MetricsServer
from stream_lis.runtime import liveness


def test_healthz_answers_what_the_check_says_and_a_broken_check_restarts_nothing(caplog):
    said = [(True, "ok")]

    def check():
        if isinstance(said[0], Exception):
            raise said[0]
        return said[0]

    server = MetricsServer(CollectorRegistry(), 0, "127.0.0.1", healthy=check)
    try:
        assert healthz(server.port) == (200, "ok\n")
        said[0] = (False, "stalled: the join stage loop has not gone round for 200 s")
        assert healthz(server.port) == (503, "stalled: the join stage loop has not gone round for 200 s\n")
        said[0] = RuntimeError("boom")
        with caplog.at_level(logging.ERROR, logger="stream_lis.exporter"):
            for _ in range(3):
                code, body = healthz(server.port)
                assert code == 200 and "the stall check failed: boom" in body
        assert [r.getMessage() for r in caplog.records] == ["the /healthz stall check failed; answering ok"]
    finally:
        server.close()


def test_stall_timeout_is_off_or_at_least_a_second():
    assert load_config(None, {"kafka.stall_timeout": "0"}).kafka.stall_timeout == "0"
    with pytest.raises(ConfigError, match="kafka.stall_timeout must be 0 \\(off\\) or at least 1s"):
        load_config(None, {"kafka.stall_timeout": "300ms"})


def progress(worker) -> dict[str, float]:
    """``stream_lis_loop_progress_timestamp_seconds`` by loop, as the worker's collector has it."""
    return {s.labels["loop"]: s.value for s in worker._loop_progress().samples}


@pytest.mark.kafka
def test_a_wedged_join_stage_fails_healthz_until_it_goes_round_again(caplog):
    from stream_lis.runtime.kafka.worker import Worker

    require_broker()
    ov = namespace({"kafka.partitions": 2, "kafka.stall_timeout": "1s"})
    assert cli("topics", "create", ov=ov).returncode == 0
    cfg = load_config(None, {**ov, "kafka.bootstrap_servers": BOOTSTRAP})
    with caplog.at_level(logging.WARNING, logger="stream_lis.worker"):
        worker = Worker(cfg, port=0, host="127.0.0.1", create=False)
    # 1 s is accepted, and said to be below the worker's own longest bound (a flush: 2 min + 30 s)
    short = [r.getMessage() for r in caplog.records if "below the longest wait" in r.getMessage()]
    assert short == [liveness.below_own_bounds(1.0, 150.0)], short
    # the producer knows every topic it writes to before a stage runs: a first send to one
    # (a dead letter, under the join stage's lock) never waits for the broker's metadata
    for topic in ("labelled", "dead_letters"):
        assert worker.producer._metadata.partitions_for_topic(ov[f"kafka.topics.{topic}"]), topic
    assert worker.checkpoint_producer._metadata.partitions_for_topic(ov["kafka.topics.checkpoints"])
    caplog.clear()
    port = worker.server.port
    wedge, wedged = threading.Event(), threading.Event()
    real_idle = worker.join._advance_idle

    def stuck_idle():  # the join loop calls this every time round, holding the stage's lock
        if not wedge.is_set():
            wedged.set()
            wedge.wait(60)
        real_idle()

    worker.start()
    try:
        wait_for(worker.ready, 60, "the worker took its partitions over")
        wait_for(lambda: healthz(port)[0] == 200, 10, "/healthz ok while every loop goes round")
        assert [(label, name) for label, name, _ in worker.loops()] == [("join", "join stage"), ("eval", "eval stage")]
        # Each loop's last round is on /metrics, for a dashboard or an alert where no orchestrator restarts
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            families = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
        beats = {s.labels["loop"]: s.value for s in families["stream_lis_loop_progress_timestamp_seconds"].samples}
        assert set(beats) == {"join", "eval"} and all(abs(time.time() - t) < 5 for t in beats.values()), beats
        # and the timeout they are held to, which the alert on a stalled loop counts from
        assert [s.value for s in families["stream_lis_stall_timeout_seconds"].samples] == [1.0]
        with caplog.at_level(logging.WARNING, logger="stream_lis.worker"):
            worker.join._advance_idle = stuck_idle
            wait_for(wedged.is_set, 10, "the join stage wedged")
            wait_for(lambda: healthz(port)[0] == 503, 10, "/healthz failing for the wedged stage")
            code, body = healthz(port)
            assert code == 503 and "the join stage loop has not gone round for" in body, body
            assert "eval stage" not in body  # the other stage still goes round
            assert "kafka.stall_timeout: 1 s" in body and "resumes from the last checkpoint" in body
            # /metrics waits for the wedged stage's lock: the gauge, read directly, stays where
            # the join loop stopped while the eval loop's moves on
            first = progress(worker)
            time.sleep(1.5)
            second = progress(worker)
            assert second["join"] == pytest.approx(first["join"], abs=0.05), (first, second)  # two clocks: not exact
            assert first["join"] < time.time() - 1, first
            assert second["eval"] > first["eval"], (first, second)
            stalls = [r for r in caplog.records if r.levelno == logging.ERROR and "stalled:" in r.getMessage()]
            assert len(stalls) == 1  # said once, not at every probe

            wedge.set()  # it goes round again: healthy again, and said so
            wait_for(lambda: healthz(port) == (200, "ok\n"), 10, "/healthz ok once the stage goes round again")
            assert any("the join stage loop not stalled any more" in r.getMessage() for r in caplog.records)

        # A stopping stage is left out: its final checkpoint has bounds of its own.
        wedge.clear()
        wedged.clear()
        wait_for(wedged.is_set, 10, "the join stage wedged again")
        wait_for(lambda: healthz(port)[0] == 503, 10, "/healthz failing again")
        worker.join.stopping.set()
        assert worker.health() == (True, "ok")
    finally:
        wedge.set()
        worker.stop()
        worker.wait()
    assert worker.failed is None


@pytest.mark.kafka
def test_waiting_for_a_side_topic_is_not_a_stall():
    """A feed whose topic does not exist yet waits for it (logged; the worker is not ready),
    and the evaluation stage waits for the feed: both loops beat while they wait, so
    ``/healthz`` stays ok however long that takes. Nor does the wait count as time without
    partitions: the stage joins its group only once its tables are read."""
    from stream_lis.runtime.kafka.worker import Worker

    require_broker()
    ov = namespace({"kafka.stall_timeout": "1s", "probes.enabled": ["external"], "probes.external.from_topic": True})
    assert cli("topics", "create", ov=ov).returncode == 0
    cfg = load_config(None, {**ov, "kafka.bootstrap_servers": BOOTSTRAP,
                             "kafka.topics.preferences": ov["kafka.topics.preferences"] + "-not-yet"})
    worker = Worker(cfg, port=0, host="127.0.0.1", create=False, stages=("eval",))
    assert [label for label, _, _ in worker.loops()] == ["preferences", "eval"]
    worker.start()
    try:
        answers = []
        for _ in range(8):  # 4 s: four times the stall timeout
            answers.append((healthz(worker.server.port)[0], worker.ready()))
            time.sleep(0.5)
        assert answers == [(200, False)] * len(answers), answers
        # and not in a group join yet: the stage subscribes once its tables are read
        assert {s.labels["stage"]: s.value for s in worker._unassigned().samples} == {"eval": 0.0}
    finally:
        worker.stop()
        worker.wait()
    assert worker.failed is None


@pytest.mark.kafka
def test_a_revocation_longer_than_the_stall_timeout_is_not_a_stall():
    """A worker handing partitions over saves each one's checkpoint in the foreground while its
    loop waits in a poll: seconds per partition at the memory bounds. It beats between the
    saves, so a revocation made of waits each within the timeout does not fail ``/healthz``
    (the restart would rebalance the group once more)."""
    from stream_lis.runtime.kafka.worker import Worker

    require_broker()
    ov = namespace({"kafka.partitions": 4, "kafka.stall_timeout": "2s"})
    assert cli("topics", "create", ov=ov).returncode == 0
    cfg = load_config(None, {**ov, "kafka.bootstrap_servers": BOOTSTRAP})
    first = Worker(cfg, port=None, create=False, stages=("join",))
    first.start()
    second = None
    try:
        wait_for(lambda: first.ready() and len(first.join.labellers) == 4, 60, "the first worker owns every partition")
        saves: list[float] = []
        real_save = first.store.save_snapshot

        def slow_save(key, raw):  # each partition's save as slow as a large one's, within the timeout
            saves.append(time.monotonic())
            time.sleep(1.2)
            return real_save(key, raw)

        first.store.save_snapshot = slow_save
        second = Worker(cfg, port=None, create=False, stages=("join",))
        second.start()
        answers = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (second.ready() and len(first.join.labellers) == 2):
            answers.append(first.health()[0])
            time.sleep(0.1)
        assert second.ready() and len(first.join.labellers) == 2, "the second worker took half the partitions"
        assert len(saves) >= 2 and saves[-1] + 1.2 - saves[0] > 2.0, saves  # longer than the timeout in all
        assert all(answers), answers
    finally:
        for w in (first, second):
            if w is not None:
                w.stop()
        for w in (first, second):
            if w is not None:
                w.wait()
