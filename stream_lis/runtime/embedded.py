"""The embedded runtime: the core fed from a file, stdin or the simulator, no broker.

It is the first run, the backtest and the test harness: records are processed in batches
under a lock shared with the metrics collector (scrapes see a consistent snapshot), a live
table is printed every few seconds, and at the end of a finite input every window the
watermark still holds is closed and evaluated.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, TextIO

from prometheus_client import CollectorRegistry

from ..config import Config
from ..engine import Engine, Snapshot
from ..exporter import MetricsServer, SnapshotCollector
from ..table import render
from .process import tune_gc

BATCH = 1000


@dataclass
class RunResult:
    snapshot: Snapshot
    records: int
    seconds: float
    stopped_by: str

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


class EmbeddedRuntime:
    """Runs an ``Engine`` over an iterable of raw records."""

    def __init__(self, cfg: Config, engine: Engine | None = None, port: int | None = None, host: str = "0.0.0.0") -> None:
        self.cfg = cfg
        tune_gc(cfg.runtime.gc_threshold)
        self.engine = engine or Engine(cfg)
        self.lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(self.snapshot))
        self.server = MetricsServer(self.registry, port, host) if port is not None else None

    def snapshot(self) -> Snapshot:
        with self.lock:
            return self.engine.snapshot()

    def run(
        self,
        records: Iterable[bytes],
        *,
        max_records: int | None = None,
        duration_s: float | None = None,
        report_every_s: float | None = 5.0,
        out: TextIO = sys.stderr,
        total_hint: int | None = None,
        source: str = "input",
        on_report: Callable[[Snapshot], None] | None = None,
    ) -> RunResult:
        """Process records until they end, ``max_records`` or ``duration_s``; then flush."""
        start = last_report = time.monotonic()
        it = iter(records)
        if max_records is not None:
            it = itertools.islice(it, max_records)
        n, stopped_by = 0, "end of input"
        while True:
            batch = list(itertools.islice(it, BATCH))
            if batch:
                with self.lock:
                    self.engine.process_records(batch, source)
                n += len(batch)
            now = time.monotonic()
            if not batch:
                if max_records is not None and n >= max_records:
                    stopped_by = "--max-events"
                break
            if duration_s is not None and now - start >= duration_s:
                stopped_by = "--duration"
                break
            if report_every_s is not None and now - last_report >= report_every_s:
                last_report = now
                snap = self.snapshot()
                progress = f"{100 * n / total_hint:.0f}% of {total_hint:,}" if total_hint else ""
                print(render(snap, n, n / (now - start), progress), file=out, flush=True)
                print("", file=out, flush=True)
                if on_report is not None:
                    on_report(snap)
        with self.lock:
            self.engine.flush()
        seconds = time.monotonic() - start
        return RunResult(self.snapshot(), n, seconds, stopped_by)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
