"""What the benchmarks share: one pre-generated simulator stream, and replaying it through the
embedded runtime in a child process (so each variant's peak RSS is its own).

Importing it puts this checkout first on the import path, for this process and the ones it
starts: a benchmark run from another worktree measures that worktree's code, not whatever
``stream_lis`` the environment has installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])


def revision() -> str:
    """The checkout's commit (``+changes`` when its tracked files differ from it), for the
    figures a benchmark prints: a figure is only comparable with the code it measured."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "diff", "--quiet", "HEAD", "--", "stream_lis"]).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    return f"commit {head}" + (" +changes in stream_lis/" if dirty else "")


def machine_pace(rounds: int = 3) -> str:
    """How fast this machine runs plain Python right now: the best of ``rounds`` timings of
    one fixed workload (dict, attribute and string operations, as the engine's per-event
    code does). The machines these benchmarks run on are shared, and the same commit's
    figures move with them from day to day (2.5x seen); quoting this beside a figure lets
    figures from two days be compared. About 0.1 s a round on a quiet machine."""
    def work() -> int:
        d: dict[str, int] = {}
        total = 0
        for k in range(200_000):
            key = "k" + str(k % 4096)
            total += d.get(key, 0)
            d[key] = k
        return total

    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - t0)
    return f"reference Python workload {best * 1000:.0f} ms (benchmarks/common.py machine_pace; lower: a faster machine)"


def write_stream(path: str, impressions: int, seed: int, preferences: str | None = None,
                 **simulator: Any) -> tuple[int, int]:
    """The simulator's stream as JSON Lines; returns (records, impressions). ``simulator``:
    more ``SimulatorConfig`` fields (``live_items``, ``users``). ``preferences``: also write
    the simulator's preference dataset there (the ``external`` probe's, see ``all_probes``)."""
    import msgspec

    from stream_lis.simulator import Simulator, SimulatorConfig

    enc = msgspec.json.Encoder().encode
    sim = Simulator(SimulatorConfig(impressions=impressions, seed=seed, **simulator))
    n = imps = 0
    with open(path, "wb") as fh:
        for ev in sim.events():
            rec = enc(ev)
            fh.write(rec + b"\n")
            n += 1
            imps += rec.startswith(b'{"type":"impression"')
    if preferences is not None:
        with open(preferences, "wb") as fh:
            for pref in sim.preferences():
                fh.write(enc(pref) + b"\n")
    return n, imps


def all_probes(preferences: str) -> dict[str, Any]:
    """Config overrides enabling every built-in probe: the defaults plus ``external``, which
    reads a preference dataset (``write_stream(preferences=...)``), as ``stream-lis run``
    does on the simulator. Every arm then runs 7 learners: clean, 5 leaky, mllm."""
    from stream_lis.config import BUILTIN_PROBES

    return {"probes.enabled": list(BUILTIN_PROBES), "probes.external.path": preferences}


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
