"""A worker started before its broker answers waits for it, serving ``/healthz``.

Workers and brokers start in no fixed order: a cluster coming up, a broker's rolling restart,
a network that is not there yet. A worker that gave up after the client's one bootstrap
attempt (30 s) exited, and Kubernetes restarted it with a back-off that grows to 5 minutes,
so a worker could come back minutes after its broker. Now it waits up to
``kafka.startup_timeout`` (5 minutes) and goes on as soon as the broker answers; meanwhile
``/healthz`` answers ok (a restart would not bring the broker), ``/readyz`` 503, and
``/metrics`` says ``stream_lis_ready 0`` and ``stream_lis_broker_answering 0`` (the alert
``KafkaBrokerNotAnswering``). A stop signal during the wait exits at once (nothing to
checkpoint yet; the CLI's handler). A start stuck anywhere (a client call without a bound of
its own) fails ``/healthz`` once it has taken ``SETUP_S`` longer than the timeout.

>>> now = [12.0]
>>> w = BrokerWait({"bootstrap_servers": "b:9092"}, timeout_s=300, clock=lambda: now[0])
>>> w.since = 0.0
>>> w.health()
(True, 'starting: waiting for the broker at b:9092 for 12 s (kafka.startup_timeout 300 s)')
>>> w.reached = True
>>> w.health()[1]
'starting: the broker answered; making topics and joining the consumer groups'
>>> sorted((m.name, m.samples[0].value) for m in w.collect())
[('stream_lis_broker_answering', 1.0), ('stream_lis_ready', 0.0)]
>>> now[0] = 481.0
>>> w.health()
(False, 'starting for 481 s, past kafka.startup_timeout (300 s) plus 180 s: stuck after the broker answered')
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterator

from kafka import KafkaAdminClient
from kafka.errors import KafkaTimeoutError
from prometheus_client.core import GaugeMetricFamily, Metric

from ..on_thread import OnThread
from .topics import servers

__all__ = ["ATTEMPT_MS", "BrokerWait", "READY_HELP", "SAY_EVERY_S", "SETUP_S"]

log = logging.getLogger("stream_lis.worker")

#: ``stream_lis_ready``'s help, for the waiting worker and the running one alike.
READY_HELP = "1 once every stage this worker runs has its partitions and recovered state."
#: How often a long wait says it is still waiting.
SAY_EVERY_S = 60.0
#: Longest one bootstrap attempt (the clients' request timeout): a connection accepted and
#: never answered is given up after it and a new one opened.
ATTEMPT_MS = 30_000
#: How long past ``kafka.startup_timeout`` a start may take before ``/healthz`` fails: for
#: making topics and the stages' clients once the broker answered, or for a bootstrap stuck
#: where the client has no bound of its own (a TLS handshake never answered).
SETUP_S = 180.0


class _Bootstrap:
    """Bootstrap attempts on one client: its IO thread and connections are closed at the end
    (a kafka-python 3.0 admin client that failed its bootstrap leaves its IO thread behind).
    Each attempt opens a new connection, so one accepted and never answered (a proxy without
    a backend, the wrong port) costs one attempt, not the whole wait."""

    def __init__(self, client_kw: dict[str, Any]) -> None:
        self.client_kw = client_kw
        try:  # kafka-python 3.0's network client; 2.x has none: an admin client per attempt
            from kafka.net.compat import KafkaNetClient
        except ImportError:
            self.client = None
        else:
            self.client = KafkaNetClient(**client_kw)
            self.client._net.start()

    def attempt(self, timeout_ms: int) -> None:
        """Return once the broker answered; ``KafkaTimeoutError`` after ``timeout_ms``."""
        if self.client is None:
            KafkaAdminClient(**self.client_kw).close()
        else:
            self.client._manager.bootstrap(timeout_ms)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def _bootstrap(client_kw: dict[str, Any], timeout_ms: int) -> None:
    """Bootstrap attempts of up to ``ATTEMPT_MS`` each until the broker answers;
    ``KafkaTimeoutError`` after ``timeout_ms``."""
    deadline = time.monotonic() + timeout_ms / 1000
    boot = _Bootstrap(client_kw)
    try:
        while True:
            left = deadline - time.monotonic()
            try:
                boot.attempt(max(1, int(min(left, ATTEMPT_MS / 1000) * 1000)))
                return
            except KafkaTimeoutError:
                if time.monotonic() >= deadline:
                    raise
    finally:
        boot.close()


class BrokerWait:
    """What a worker answers on HTTP while it waits for its broker, and the wait itself."""

    def __init__(self, client_kw: dict[str, Any], timeout_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client_kw, self.timeout_s, self.clock = client_kw, timeout_s, clock
        self.since = clock()
        #: Set once the broker answered (the worker then makes its topics and stages).
        self.reached = False

    def health(self) -> tuple[bool, str]:
        """``/healthz``: ok while the start is within its bounds (restarting would not bring
        the broker), saying what it waits for; 503 once it has taken ``SETUP_S`` longer than
        ``kafka.startup_timeout``, whatever it is stuck in (the orchestrator restarts it)."""
        took = self.clock() - self.since
        if took > self.timeout_s + SETUP_S:
            return False, (f"starting for {took:.0f} s, past kafka.startup_timeout ({self.timeout_s:g} s) plus "
                           f"{SETUP_S:g} s: stuck {'after the broker answered' if self.reached else 'reaching the broker'}")
        if self.reached:
            return True, "starting: the broker answered; making topics and joining the consumer groups"
        return True, (f"starting: waiting for the broker at {servers(self.client_kw)} for "
                      f"{took:.0f} s (kafka.startup_timeout {self.timeout_s:g} s)")

    def collect(self) -> Iterator[Metric]:
        """A prometheus_client collector: not ready, and whether the broker answered yet."""
        ready = GaugeMetricFamily("stream_lis_ready", READY_HELP)
        ready.add_metric([], 0.0)
        answering = GaugeMetricFamily("stream_lis_broker_answering", "1 while the broker answers this worker's "
                                      "requests; 0 while a starting worker waits for it (up to kafka.startup_timeout).")
        answering.add_metric([], 1.0 if self.reached else 0.0)
        yield from (ready, answering)

    def wait(self, bootstrap: Callable[[dict[str, Any], int], None] = _bootstrap) -> None:
        """Return once the broker answers; raise ``KafkaTimeoutError`` after ``timeout_s``.

        The bootstrap runs on a thread of its own so that this one can say, once a minute,
        that it is still waiting (the client's own connection errors are limited to one a
        minute by the CLI's log filter)."""
        reaching = OnThread(lambda: bootstrap(self.client_kw, int(self.timeout_s * 1000)), "broker-wait")
        reaching.done.wait(min(5.0, self.timeout_s))
        said = None
        while not reaching.done.is_set():
            waited = self.clock() - self.since
            if said is None or waited - said >= SAY_EVERY_S:
                log.warning("waiting for the broker at %s: no answer for %.0f s; going on when it answers, giving up "
                            "after kafka.startup_timeout (%g s)", servers(self.client_kw), waited, self.timeout_s)
                said = waited
            if waited > self.timeout_s + ATTEMPT_MS / 1000:
                # The client has no bound of its own somewhere (a TLS handshake never answered):
                # its thread is left behind, a daemon, as the process ends.
                raise KafkaTimeoutError(f"could not reach the broker at {servers(self.client_kw)} within "
                                        f"kafka.startup_timeout ({self.timeout_s:g} s); the client is still "
                                        "waiting for it (a TLS handshake?)")
            reaching.done.wait(1.0)
        try:
            reaching.result()
        except KafkaTimeoutError as exc:
            raise KafkaTimeoutError(f"could not reach the broker at {servers(self.client_kw)} within "
                                    f"kafka.startup_timeout ({self.timeout_s:g} s); the Kafka client's log lines "
                                    "above say what it met") from exc
        self.reached = True
        if said is not None:
            log.info("the broker at %s answered after %.0f s", servers(self.client_kw), self.clock() - self.since)
