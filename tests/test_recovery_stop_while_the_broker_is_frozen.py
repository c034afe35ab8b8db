"""Stopping a worker while the broker does not answer ends it in bounded time.

Each stage's final checkpoint waited out the client's timeouts against a broker that did not
answer (3 minutes in all, past Kubernetes' 60 s grace period, with tracebacks), and a second
Ctrl-C did nothing. Now a stage stops without a final checkpoint while the broker does not
answer (the restart resumes from the last one), and a second signal ends the process at once.
"""

from __future__ import annotations

import signal
import time

import pytest

from kafka_harness import (WorkerProc, broker_frozen, broker_pid, fresh_input, replay_in_background,
                           require_broker, total, wait_for)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.mark.parametrize("signals", [1, 2], ids=["one_sigterm", "a_second_sigterm"])
def test_a_worker_stopped_while_the_broker_is_frozen_exits_in_time(tmp_path, signals):
    require_broker()
    pid = broker_pid()
    ov, path, _ = fresh_input(tmp_path, 3_000, seed=4)
    worker = WorkerProc(ov, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        replay_in_background(path, ov, rate=3000).join(120)
        wait_for(lambda: total(worker.metrics(), "stream_lis_labelled_examples_total") > 0, 120,
                 "labels before the broker freezes", worker.alive)
        with broker_frozen(pid):
            wait_for(lambda: worker.metrics().get("stream_lis_broker_answering", [None])[0] is not None
                     and total(worker.metrics(), "stream_lis_broker_answering") == 0, 60,
                     "the worker to see the broker is not answering", worker.alive)
            t0 = time.monotonic()
            worker.proc.send_signal(signal.SIGTERM)
            if signals == 2:
                time.sleep(2)
                worker.proc.send_signal(signal.SIGTERM)
            rc = worker.proc.wait(timeout=120)
            took = time.monotonic() - t0
        log = worker.log.read_text()
        if signals == 2:
            assert rc == 128 + signal.SIGTERM and took < 10, (rc, took, log[-2000:])
            assert "SIGTERM again: exiting now" in log
        else:
            assert rc == 0 and took < 60, (rc, took, log[-3000:])  # Kubernetes' grace period in the base
            assert "stopping without a checkpoint: the broker does not answer" in log
            assert "Traceback" not in log, log[-3000:]
    finally:
        if worker.proc.poll() is None:
            worker.stop()
