"""A worker started before its broker waits for it, alive and not ready, and goes on when it answers.

Workers and brokers start in no fixed order (a cluster coming up, a rolling restart). A worker
that gave up after the client's one 30 s bootstrap exited, and Kubernetes restarted it with a
back-off of up to 5 minutes. Now it waits up to ``kafka.startup_timeout``, answering
``/healthz`` (ok, saying what it waits for), ``/readyz`` (503) and ``/metrics``
(``stream_lis_ready 0``, ``stream_lis_broker_answering 0``) on the port it was given.

Checked with a real worker process whose bootstrap address is a loopback relay to the real
broker that refuses connections at first (nothing listening: the broker not up yet) and starts
relaying after the worker said it was waiting. The broker's metadata gives the clients its own
address, so only the bootstrap goes through the relay.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kafka.errors import KafkaTimeoutError

from kafka_harness import BOOTSTRAP, CLI, cli, free_port, http_get, namespace, require_broker, set_args, wait_for
from stream_lis.config import ConfigError, load_config
from stream_lis.runtime.kafka import startup
from stream_lis.runtime.kafka.startup import BrokerWait


def test_startup_timeout_is_at_least_a_second():
    assert load_config(None, {}).kafka.startup_timeout == "5m"
    with pytest.raises(ConfigError, match="kafka.startup_timeout must be at least 1s"):
        load_config(None, {"kafka.startup_timeout": "500ms"})


class _Relay:
    """Forwards loopback connections on ``port`` to the broker, once started; the first
    ``hold`` connections are accepted and never answered (a proxy without a backend)."""

    def __init__(self, port: int, hold: int = 0) -> None:
        self.port, self.hold = port, hold
        host, p = BOOTSTRAP.split(",")[0].rsplit(":", 1)
        self.target = (host, int(p))
        self.relayed = 0
        self.held: list[socket.socket] = []
        self._server: socket.socket | None = None

    def start(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            if len(self.held) < self.hold:
                self.held.append(conn)
                continue
            up = socket.create_connection(self.target)
            self.relayed += 1
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        for s in [self._server, *self.held]:
            if s is not None:
                s.close()


def _gauges(body: str) -> dict[str, float]:
    return {f.name: f.samples[0].value for f in text_string_to_metric_families(body) if f.samples and not f.samples[0].labels}


@pytest.mark.kafka
def test_a_worker_started_before_its_broker_waits_alive_and_goes_on_when_it_answers(tmp_path: Path):
    require_broker()
    ov = namespace({"kafka.partitions": 2, "kafka.startup_timeout": "2m"})
    assert cli("topics", "create", ov=ov).returncode == 0
    relay = _Relay(free_port())
    port = free_port()
    log = tmp_path / "worker.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([*CLI, "worker", "--bootstrap", f"127.0.0.1:{relay.port}", "--port", str(port),
                                 "--host", "127.0.0.1", *set_args(ov)], stdout=fh, stderr=subprocess.STDOUT)
    try:
        def alive() -> None:
            assert proc.poll() is None, log.read_text()[-3000:]

        # The broker "not up yet": nothing listens at the bootstrap address.
        wait_for(lambda: "waiting for the broker at" in log.read_text(), 60, "the worker saying it waits", alive)
        status, body = http_get(port, "/healthz")
        assert status == 200 and body.startswith(f"starting: waiting for the broker at 127.0.0.1:{relay.port}"), body
        assert http_get(port, "/readyz") == (503, "starting\n")
        status, body = http_get(port, "/metrics")
        assert status == 200
        assert _gauges(body) == {"stream_lis_ready": 0.0, "stream_lis_broker_answering": 0.0}

        relay.start()  # the broker is up
        t0 = time.monotonic()
        wait_for(lambda: http_get(port, "/readyz")[0] == 200, 90, f"the worker ready (log {log})", alive)
        print(f"ready {time.monotonic() - t0:.1f} s after the broker came")
        assert relay.relayed >= 1
        assert http_get(port, "/healthz") == (200, "ok\n")
        m = _gauges(http_get(port, "/metrics")[1])
        assert m["stream_lis_ready"] == 1.0 and m["stream_lis_broker_answering"] == 1.0
        assert "answered after" in log.read_text()
        proc.terminate()
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        relay.close()


@pytest.mark.kafka
@pytest.mark.timeout(120)
def test_a_connection_accepted_and_never_answered_costs_one_attempt_not_the_whole_wait(monkeypatch):
    """A proxy without a backend (or a wrong port) accepts the first connection and never
    answers: the client gave that one connection the whole timeout. Each attempt is bounded
    now (``ATTEMPT_MS``, 30 s; 2 s here), and the next one opens a new connection."""
    require_broker()
    monkeypatch.setattr(startup, "ATTEMPT_MS", 2000)
    relay = _Relay(free_port(), hold=1)
    relay.start()
    try:
        t0 = time.monotonic()
        BrokerWait({"bootstrap_servers": f"127.0.0.1:{relay.port}"}, timeout_s=60).wait()
        took = time.monotonic() - t0
    finally:
        relay.close()
    assert len(relay.held) == 1 and relay.relayed >= 1
    assert 1.5 < took < 15, took  # one held attempt, then the broker


@pytest.mark.timeout(60)
def test_a_tls_handshake_never_answered_does_not_hold_the_start_past_its_timeout(monkeypatch):
    """kafka-python's TLS handshake has no timeout of its own: a peer that accepts and never
    answers held the start for ever, alive on /healthz. The wait gives up past
    ``kafka.startup_timeout`` plus one attempt."""
    monkeypatch.setattr(startup, "ATTEMPT_MS", 1000)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog), never answers
        port = silent.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(KafkaTimeoutError, match="within kafka.startup_timeout"):
            BrokerWait({"bootstrap_servers": f"127.0.0.1:{port}", "security_protocol": "SSL"}, timeout_s=2).wait()
        assert time.monotonic() - t0 < 10
