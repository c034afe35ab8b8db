"""What the benchmarks share: one pre-generated simulator stream, and replaying it through the
embedded runtime in a child process (so each variant's peak RSS is its own)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any


def write_stream(path: str, impressions: int, seed: int, **simulator: Any) -> tuple[int, int]:
    """The simulator's stream as JSON Lines; returns (records, impressions). ``simulator``:
    more ``SimulatorConfig`` fields (``live_items``, ``users``)."""
    from stream_lis.runtime.sources import simulator_records
    from stream_lis.simulator import SimulatorConfig

    n = imps = 0
    with open(path, "wb") as fh:
        for rec in simulator_records(SimulatorConfig(impressions=impressions, seed=seed, **simulator)):
            fh.write(rec + b"\n")
            n += 1
            imps += rec.startswith(b'{"type":"impression"')
    return n, imps


def replay(path: str, overrides: dict[str, Any]) -> tuple[Any, float, float]:
    """Run the file through the embedded runtime with these config overrides (in this
    process): the run's result, its seconds, and its CPU seconds (user + system; imports and
    set-up are outside both)."""
    from stream_lis.config import load_config
    from stream_lis.engine import Engine
    from stream_lis.runtime.embedded import EmbeddedRuntime
    from stream_lis.runtime.sources import file_records

    cfg = load_config(None, overrides)
    rt = EmbeddedRuntime(cfg, Engine(cfg), port=None)
    t0, c0 = time.perf_counter(), time.process_time()
    res = rt.run(file_records(path, cfg.limits.max_event_bytes), report_every_s=None)
    return res, time.perf_counter() - t0, time.process_time() - c0


def run_child(script: str, path: str, overrides: dict[str, Any]) -> dict:
    """``script --child PATH OVERRIDES`` in a fresh interpreter; its last stdout line as JSON."""
    out = subprocess.run([sys.executable, script, "--child", path, json.dumps(overrides)],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"child failed ({overrides}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])
