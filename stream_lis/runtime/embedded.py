"""The embedded runtime: the core fed from a file, stdin or the simulator, no broker.

It is the first run, the backtest and the test harness: records are processed in batches
under a lock shared with the metrics collector (scrapes see a consistent snapshot), a live
table is printed every few seconds, and at the end of a finite input every window the
watermark still holds is closed and evaluated.
"""

from __future__ import annotations

import itertools
import queue
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
from ..config import parse_duration
from ..freshness import ChunkDeadline
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
        live: bool = False,
        where: Callable[[int], str] | None = None,
        stop: Callable[[], str | None] | None = None,
    ) -> RunResult:
        """Process records until they end, ``max_records`` or ``duration_s``; then flush.

        ``live``: the records arrive as they happen (stdin from a pipe): they are read on a
        thread and processed as they come rather than in full batches, and an arm's partial
        chunk is evaluated once it waited ``runtime.max_batch_delay`` (``freshness``). A
        replay (``live=False``) cuts chunks by count alone: its figures do not depend on timing.
        ``where(k)``: the source a dead letter names for the input's ``k``-th record (0-based;
        ``sources.LineNumbers`` for a file), else ``source``.
        ``stop()``: asked between batches; a reason (a signal's name) ends the run there, as
        ``duration_s`` does: the batch in hand is finished and every window flushed.
        """
        start = last_report = time.monotonic()
        it = iter(records)
        if max_records is not None:
            it = itertools.islice(it, max_records)
        reader = _LiveReader(it) if live else None
        take = reader.take if reader is not None else (lambda: list(itertools.islice(it, BATCH)))
        deadline = ChunkDeadline(parse_duration(self.cfg.runtime.max_batch_delay) / 1000) if live else None
        n, stopped_by = 0, "end of input"
        while True:
            batch = take()
            if batch:
                with self.lock:
                    self.engine.process_records(batch, source, (lambda k, base=n: where(base + k)) if where else None)
                n += len(batch)
            now = time.monotonic()
            if deadline is not None:
                with self.lock:
                    self.engine.flush_overdue(deadline, now)
            if batch is None or (not batch and not live):
                if max_records is not None and n >= max_records:
                    stopped_by = "--max-events"
                break
            if duration_s is not None and now - start >= duration_s:
                stopped_by = "--duration"
                break
            why = stop() if stop is not None else None
            if why is not None:
                stopped_by = why
                break
            if report_every_s is not None and now - last_report >= report_every_s:
                last_report = now
                snap = self.snapshot()
                progress = f"{100 * n / total_hint:.0f}% of {total_hint:,}" if total_hint else ""
                print(render(snap, n, n / (now - start), progress, level=self.cfg.evaluation.confidence_level),
                      file=out, flush=True)
                print("", file=out, flush=True)
                if on_report is not None:
                    on_report(snap)
        if reader is not None and stopped_by != "end of input":
            # Records the reader took off the input but the loop did not: evaluated too (up
            # to a queue's worth, 20,000 records, would otherwise be read and never counted).
            rest = reader.stop()
            # And a last line the producer has not ended with a newline yet (stdin): taken
            # too, evaluated or dead-lettered as what it is, never lost in a read buffer.
            unterminated = getattr(records, "unterminated", None)
            last = unterminated() if unterminated is not None and stopped_by != "--max-events" else b""
            if last:
                rest.append(last)
            for k in range(0, len(rest), BATCH):
                with self.lock:
                    self.engine.process_records(rest[k:k + BATCH], source,
                                                (lambda j, base=n: where(base + j)) if where else None)
                n += len(rest[k:k + BATCH])
        with self.lock:
            self.engine.flush(input_ended=stopped_by == "end of input")
        seconds = time.monotonic() - start
        return RunResult(self.snapshot(), n, seconds, stopped_by)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


class _LiveReader:
    """Reads records on a thread; ``take`` returns what arrived (waiting up to 100 ms for
    the first), ``[]`` when nothing did, ``None`` once the input ended."""

    def __init__(self, it: Iterable[bytes]) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=BATCH * 20)
        self._done = False
        self._stopping = False
        self._thread = threading.Thread(target=self._pump, args=(it,), name="live-input", daemon=True)
        self._thread.start()

    def _pump(self, it: Iterable[bytes]) -> None:
        try:
            for rec in it:
                self._q.put(rec)  # a record read is queued before the stop is looked at
                if self._stopping:
                    return
        finally:
            self._q.put(_END)

    def stop(self, settle_s: float = 0.2) -> list[bytes]:
        """Stop reading; every record read and not taken yet. The reader may be blocked in a
        read (no more input), or about to queue a record it read: it is waited for until
        ``settle_s`` passes without one."""
        self._stopping = True
        out: list[bytes] = []
        quiet_since = time.monotonic()
        while not self._done:
            try:
                rec = self._q.get(timeout=0.05)
            except queue.Empty:
                if not self._thread.is_alive() or time.monotonic() - quiet_since > settle_s:
                    break
                continue
            if rec is _END:
                self._done = True
            else:
                out.append(rec)
                quiet_since = time.monotonic()
        return out

    def take(self) -> list[bytes] | None:
        if self._done:
            return None
        out: list[bytes] = []
        try:
            first = self._q.get(timeout=0.1)
        except queue.Empty:
            return out
        while True:
            if first is _END:
                self._done = True
                return out or None
            out.append(first)
            if len(out) >= BATCH:
                return out
            try:
                first = self._q.get_nowait()
            except queue.Empty:
                return out


_END = object()
