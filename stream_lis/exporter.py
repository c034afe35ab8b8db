"""Prometheus exposition: the engine's snapshot as metrics, computed at scrape time.

A custom collector turns ``Engine.snapshot()`` into metric families on each scrape, so the
hot path never touches a metric object, windowed statistics (DeLong over the window) are
computed once per scrape rather than per event, and the series of an experiment that ended
disappear with it. Labels are bounded: experiment, arm, learner, probe, window, reason,
outcome; never a user or item id.

The HTTP server adds ``/healthz`` (the process is alive and, for a Kafka worker, every loop
goes round: ``runtime.liveness``) and ``/readyz`` (the runtime has recovered its state and is
processing) next to ``/metrics``.
"""

from __future__ import annotations

import logging
import math
import platform
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from . import __version__
from .engine import LABEL_DELAY_BUCKETS, Counters, Snapshot
from .events import REASONS
from .join import CLICK_OUTCOMES

P = "stream_lis_"
ARM = ["experiment", "arm"]


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def address_family(host: str, port: int) -> int:
    """IPv6 for a host that has only IPv6 addresses (``::1``), else IPv4 as before: the HTTP
    server binds IPv4 whatever it is given, and refused an IPv6 address as "not supported". A
    name with both (``localhost`` on many systems) stays IPv4, where scrapes of 127.0.0.1 go;
    ``''`` is every IPv4 interface."""
    if not host:
        return socket.AF_INET
    families = {ai[0] for ai in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    return socket.AF_INET if socket.AF_INET in families or not families else socket.AF_INET6


class _HTTPServerIPv6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class SnapshotCollector:
    """Yields every stream_lis metric family from a fresh snapshot."""

    def __init__(self, snapshot: Callable[[], Snapshot], extra: Callable[[], Iterator[Metric]] | None = None) -> None:
        self._snapshot = snapshot
        self._extra = extra

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: families depend on the live experiments

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot()
        yield from build_info()
        yield from arm_metrics(s)
        yield from pipeline_metrics(s)
        if self._extra is not None:
            yield from self._extra()


def build_info() -> Iterator[Metric]:
    info = InfoMetricFamily(P + "build", "stream_lis version and Python runtime.")
    info.add_metric([], {"version": __version__, "python": platform.python_version()})
    yield info


def arm_metrics(s: Snapshot) -> Iterator[Metric]:
    auc = GaugeMetricFamily(P + "auc", "ROC AUC of each learner of an arm (ratio), over the sliding window of the last N labelled examples or cumulative since start.", labels=[*ARM, "learner", "window"])
    auc_err = GaugeMetricFamily(P + "auc_cumulative_error_bound", "Worst-case absolute error of the binned since-start AUC.", labels=[*ARM, "learner"])
    prod = GaugeMetricFamily(P + "production_auc", "ROC AUC of the production score carried by the events (ratio).", labels=[*ARM, "window"])
    lis = {b: GaugeMetricFamily(P + "lis" + sfx, f"Leakage Impact Score AUC(leaky:probe) - AUC(clean) on the window{txt}.", labels=[*ARM, "probe"])
           for b, sfx, txt in (("v", "", ""), ("lo", "_ci_lower", ": lower confidence bound (paired DeLong)"), ("hi", "_ci_upper", ": upper confidence bound (paired DeLong)"))}
    ais = {b: GaugeMetricFamily(P + "ais" + sfx, f"AUC Improvement Score AUC(mllm) - AUC(clean) on the window{txt}.", labels=ARM)
           for b, sfx, txt in (("v", "", ""), ("lo", "_ci_lower", ": lower confidence bound (paired DeLong)"), ("hi", "_ci_upper", ": upper confidence bound (paired DeLong)"))}
    eff = GaugeMetricFamily(P + "alignment_efficiency", "AIS / LIS[probe]: share of the preference data's upper bound the MLLM captured; absent when LIS is not significantly positive.", labels=[*ARM, "probe"])
    imps = CounterMetricFamily(P + "impressions", "Accepted impressions.", labels=ARM)
    clicks = CounterMetricFamily(P + "clicks", "Clicks attributed to an impression within the attribution window (counted when its label is final).", labels=ARM)
    labelled = CounterMetricFamily(P + "labelled_examples", "Impressions with a final label, evaluated by the arm's learners.", labels=[*ARM, "label"])
    truncated = CounterMetricFamily(P + "truncated_examples", "Examples evaluated at the end of a finite input (a file, a Kafka backfill) before their window closed (learnt from, left out of AUCs).", labels=ARM)
    emb = CounterMetricFamily(P + "embedding_mismatches", "Evaluated examples of an arm with embeddings whose vector had another length than the arm's (kind=length) or was missing (kind=missing).", labels=[*ARM, "kind"])
    ctr = GaugeMetricFamily(P + "ctr", "Click-through rate of labelled impressions (ratio).", labels=ARM)
    win = GaugeMetricFamily(P + "window_examples", "Labelled examples in the sliding window.", labels=ARM)
    outdated = GaugeMetricFamily(P + "learner_values_outdated", "1 when the arm resumed from a checkpoint whose learners were built with other values than this config builds now (a release with new defaults); they stay until the arm restarts.", labels=ARM)
    for a in s.arms:
        arm = [a.experiment, a.arm]
        for name, st in a.learners.items():
            if _finite(st.auc_window):
                auc.add_metric([*arm, name, "sliding"], st.auc_window)
            if _finite(st.auc_cumulative):
                auc.add_metric([*arm, name, "cumulative"], st.auc_cumulative)
                auc_err.add_metric([*arm, name], st.auc_cumulative_error)
        if _finite(a.production_auc_window):
            prod.add_metric([*arm, "sliding"], a.production_auc_window)
        if _finite(a.production_auc_cumulative):
            prod.add_metric([*arm, "cumulative"], a.production_auc_cumulative)
        for probe, iv in a.lis.items():
            if _finite(iv.value):
                lis["v"].add_metric([*arm, probe], iv.value)
            if _finite(iv.low) and _finite(iv.high):
                lis["lo"].add_metric([*arm, probe], iv.low)
                lis["hi"].add_metric([*arm, probe], iv.high)
            e = a.efficiency.get(probe)
            if _finite(e):
                eff.add_metric([*arm, probe], e)
        if a.ais is not None and _finite(a.ais.value):
            ais["v"].add_metric(arm, a.ais.value)
            if _finite(a.ais.low) and _finite(a.ais.high):
                ais["lo"].add_metric(arm, a.ais.low)
                ais["hi"].add_metric(arm, a.ais.high)
        imps.add_metric(arm, a.impressions)
        clicks.add_metric(arm, a.clicks)
        labelled.add_metric([*arm, "positive"], a.labelled_positive)
        labelled.add_metric([*arm, "negative"], a.labelled_negative)
        truncated.add_metric(arm, a.truncated)
        if a.has_embeddings:
            emb.add_metric([*arm, "length"], a.embedding_wrong_length)
            emb.add_metric([*arm, "missing"], a.embedding_missing)
        if a.ctr is not None:
            ctr.add_metric(arm, a.ctr)
        win.add_metric(arm, a.window_examples)
        outdated.add_metric(arm, 1.0 if a.learner_values_outdated else 0.0)
    yield from (auc, auc_err, prod, *lis.values(), *ais.values(), eff, imps, clicks, labelled, truncated, emb, ctr, win,
                outdated)


def _counter_sets(s: Snapshot, stage: str) -> tuple[list[str], list[tuple[list[str], Counters]]]:
    """Label names and (label values, counters) to export a stage's counter families from:
    one unlabelled set, or one per partition (see ``Snapshot.partition_counters``)."""
    if s.partition_counters is None:
        return [], [([], s.counters)]
    return ["partition"], [([str(p)], c) for p, c in sorted(s.partition_counters.get(stage, {}).items())]


def pipeline_metrics(s: Snapshot) -> Iterator[Metric]:
    extra, sets = _counter_sets(s, "join")
    inv = CounterMetricFamily(P + "invalid_events", "Rejected input records by reason; each is dead-lettered.", labels=[*extra, "reason"])
    joins = CounterMetricFamily(P + "click_joins", "Clicks by join outcome: attributed, duplicate, late (in the window, label already final), out_of_window, orphan (no impression known: never seen, or final over a window earlier).", labels=[*extra, "outcome"])
    records = CounterMetricFamily(P + "records", "Input records accepted (valid, on time, not a duplicate); a rejected one counts in invalid_events.", labels=extra)
    delay = HistogramMetricFamily(P + "label_delay_seconds", "Event time from impression to final label (click time for positives, attribution window for negatives).", labels=extra)
    click_delay = HistogramMetricFamily(P + "click_delay_seconds", "Event time from impression to its attributed click (positive labels only: a negative's delay is the attribution window itself).", labels=extra)
    for lv, c in sets:
        # Every reason and outcome from 0: a series born at its first count already holds it,
        # so increase() / rate() would miss the first burst of a new reason.
        for reason in sorted(set(REASONS) | set(c.invalid)):
            inv.add_metric([*lv, reason], c.invalid.get(reason, 0))
        for outcome in sorted(set(CLICK_OUTCOMES) | set(c.clicks)):
            joins.add_metric([*lv, outcome], c.clicks.get(outcome, 0))
        records.add_metric(lv, c.records)
        for family, counts, total in ((delay, c.label_delay, c.label_delay_sum),
                                      (click_delay, c.click_delay, c.click_delay_sum)):
            buckets, acc = [], 0
            for bound, n in zip(LABEL_DELAY_BUCKETS, counts):
                acc += n
                buckets.append(("+Inf" if math.isinf(bound) else str(float(bound)), acc))
            family.add_metric(lv, buckets, total)
    extra, sets = _counter_sets(s, "eval")
    shed = CounterMetricFamily(P + "shed", "Examples or behaviour-log events dropped because a memory bound (limits.*) was reached.", labels=[*extra, "bound"])
    ended = CounterMetricFamily(P + "experiments_ended", "Experiments ended by inactivity; their series were removed.", labels=extra)
    for lv, c in sets:
        for bound in ("lookahead", "behaviour_log"):
            shed.add_metric([*lv, bound], c.shed.get(bound, 0))
        ended.add_metric(lv, c.experiments_ended)
    g = []
    # After the end of a finite input the watermark is +inf; the last event time stands in.
    wm_ms = s.watermark_ms if abs(s.watermark_ms) < (1 << 61) else s.max_event_ms
    if abs(wm_ms) < (1 << 61):
        wm = GaugeMetricFamily(P + "watermark_timestamp_seconds", "Event-time watermark (largest event time minus allowed lateness).")
        wm.add_metric([], wm_ms / 1000.0)
        lag = GaugeMetricFamily(P + "watermark_lag_seconds", "Wall clock minus the watermark: how far behind real time "
                                "the input is read (a Kafka worker's join stage; its evaluation stage's own: "
                                "stream_lis_evaluation_lag_seconds).")
        lag.add_metric([], time.time() - wm_ms / 1000.0)
        g += [wm, lag]
    if s.last_evaluation_unix is not None:
        last = GaugeMetricFamily(P + "last_evaluation_timestamp_seconds", "Wall-clock time the learners last evaluated a chunk of examples.")
        last.add_metric([], s.last_evaluation_unix)
        g.append(last)
    pend = GaugeMetricFamily(P + "pending_impressions", "Impressions waiting for their attribution window to close.")
    pend.add_metric([], s.pending_impressions)
    held = GaugeMetricFamily(P + "held_examples", "Labelled examples waiting for their look-ahead horizon or chunk.")
    held.add_metric([], s.held_examples)
    yield from (inv, joins, shed, records, ended, delay, click_delay, *g, pend, held)


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on a background thread."""

    def __init__(self, registry: CollectorRegistry, port: int, host: str = "0.0.0.0",
                 ready: Callable[[], bool] = lambda: True,
                 healthy: Callable[[], tuple[bool, str]] = lambda: (True, "ok"), not_ready: str = "recovering") -> None:
        """``ready()``: what ``/readyz`` answers (``not_ready``, with a 503, when it is
        False); ``healthy()``: whether ``/healthz`` answers 200, and its body (503 and the
        reason otherwise)."""
        self.serve(registry, ready, healthy, not_ready)
        server = self
        check_failed = threading.Event()  # said in the log once

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    try:
                        body, ctype, code = generate_latest(server.registry), CONTENT_TYPE_LATEST, 200
                    except Exception as exc:  # noqa: BLE001 - a failed scrape is answered, never a dropped connection
                        body, ctype, code = f"metrics unavailable: {exc}\n".encode(), "text/plain", 503
                elif path == "/healthz":
                    try:
                        ok, why = server.healthy()
                    except Exception as exc:  # noqa: BLE001 - a broken check must not restart the process
                        ok, why = True, f"ok (the stall check failed: {exc})"
                        if not check_failed.is_set():
                            check_failed.set()
                            logging.getLogger("stream_lis.exporter").exception("the /healthz stall check failed; "
                                                                               "answering ok")
                    body, ctype, code = f"{why}\n".encode(), "text/plain", 200 if ok else 503
                elif path == "/readyz":
                    ok = server.ready()
                    body, ctype, code = (b"ready\n" if ok else f"{server.not_ready}\n".encode()), "text/plain", 200 if ok else 503
                else:
                    body, ctype, code = b"not found: try /metrics, /healthz, /readyz\n", "text/plain", 404
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the scraper gave up (timeout, shutdown): nothing to answer, nothing to log

            def log_message(self, *args: object) -> None:
                pass

        ipv6 = address_family(host, port) == socket.AF_INET6
        self.httpd = (_HTTPServerIPv6 if ipv6 else ThreadingHTTPServer)((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()

    def serve(self, registry: CollectorRegistry, ready: Callable[[], bool],
              healthy: Callable[[], tuple[bool, str]], not_ready: str = "recovering") -> None:
        """Answer from these from now on: a Kafka worker's server is up while it waits for its
        broker (``startup.BrokerWait``), and answers for the running worker afterwards on the
        same port, without a gap in which probes would find nothing listening. ``not_ready``:
        the body of a 503 from ``/readyz``."""
        self.registry, self.ready, self.healthy, self.not_ready = registry, ready, healthy, not_ready

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
