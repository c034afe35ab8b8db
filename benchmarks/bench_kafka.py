"""Kafka runtime throughput and recovery time, against a real broker.

Produces a pre-generated simulator stream into fresh topics as fast as possible, with one or
two workers consuming, and prints:

* ingest rate: records/s the join stage consumed (from its first to its last record);
* end-to-end rate: records/s from the first record produced until every impression is
  labelled and evaluated (includes the idle-partition timeout that closes the last windows);
* the largest consumer lag seen while it ran;
* restart: seconds from starting a worker again (after SIGTERM, and after SIGKILL) until
  ``/readyz`` answers 200 (its state restored from the checkpoints).

Usage: python benchmarks/bench_kafka.py --bootstrap 127.0.0.1:9092 [--impressions N] [--workers 1 2]
Needs a broker (scripts/kafka-broker.sh start).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

from prometheus_client.parser import text_string_to_metric_families

CLI = [sys.executable, "-m", "stream_lis"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            body = r.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            if not s.name.endswith("_created"):
                key = s.name + (":" + s.labels["stage"] if "stage" in s.labels else "")
                out[key] = out.get(key, 0.0) + s.value
                if s.name == "stream_lis_consumer_lag":
                    out["lag_max"] = max(out.get("lag_max", 0.0), s.value)
    return out


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def start_worker(sets: list[str], bootstrap: str, log) -> tuple[subprocess.Popen, int]:
    port = free_port()
    p = subprocess.Popen([*CLI, "worker", "--bootstrap", bootstrap, "--port", str(port), "--host", "127.0.0.1", *sets],
                         stdout=log, stderr=subprocess.STDOUT)
    return p, port


def wait(cond, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(0.2)
    raise SystemExit(f"timed out after {timeout} s")


def run(n_workers: int, path: str, n_records: int, n_imps: int, bootstrap: str, tmp: str) -> dict:
    p = "bench" + uuid.uuid4().hex[:6]
    ov = {"kafka.group_id": p, "kafka.idle_partition_timeout": "2s", "kafka.checkpoint_interval": "5s",
          **{f"kafka.topics.{t}": f"{p}-{t}" for t in ("impressions", "clicks", "preferences", "labelled", "dead_letters", "checkpoints")}}
    sets = [a for k, v in ov.items() for a in ("--set", f"{k}={v}")]
    subprocess.run([*CLI, "topics", "create", "--bootstrap", bootstrap, *sets], check=True, capture_output=True)
    log = open(os.path.join(tmp, f"{p}.log"), "ab")
    workers = [start_worker(sets, bootstrap, log) for _ in range(n_workers)]
    for _, port in workers:
        wait(lambda: ready(port), 120)
    t0 = time.monotonic()
    prod = subprocess.run([*CLI, "replay", path, "--bootstrap", bootstrap, *sets], capture_output=True, text=True)
    produced_s = time.monotonic() - t0
    lag_max, first, last, seen = 0.0, None, None, 0.0
    while True:
        ms = [metrics(port) for _, port in workers]
        recs = sum(m.get("stream_lis_records_total", 0) for m in ms)
        invalid = sum(m.get("stream_lis_invalid_events_total", 0) for m in ms)
        lag_max = max([lag_max] + [m.get("lag_max", 0.0) for m in ms])
        now = time.monotonic()
        if recs + invalid > 0 and first is None:
            first = now
        if recs + invalid > seen:
            seen, last = recs + invalid, now
        labelled = sum(m.get("stream_lis_labelled_examples_total", 0) for m in ms)
        late = invalid
        if labelled + late >= n_imps and sum(m.get("stream_lis_held_examples", 0) for m in ms) == 0:
            break
        if now - t0 > 900:
            raise SystemExit("timed out")
        time.sleep(0.25)
    e2e = time.monotonic() - t0
    out = {"workers": n_workers, "records": n_records, "produce_s": produced_s,
           "ingest_rate": seen / max(1e-9, (last - t0)), "e2e_s": e2e, "e2e_rate": n_records / e2e, "lag_max": lag_max}
    if n_workers == 1:
        proc, port = workers[0]
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        proc, port = start_worker(sets, bootstrap, log)
        out["ready_after_sigterm_s"] = wait(lambda: ready(port), 120)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc, port = start_worker(sets, bootstrap, log)
        out["ready_after_sigkill_s"] = wait(lambda: ready(port), 120)
        workers = [(proc, port)]
    for proc, _ in workers:
        proc.terminate()
        proc.wait(60)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default=os.environ.get("STREAM_LIS_BOOTSTRAP", "127.0.0.1:9092"))
    ap.add_argument("--impressions", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    from stream_lis.runtime.sources import simulator_records
    from stream_lis.simulator import SimulatorConfig

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "stream.jsonl")
        n = imps = 0
        with open(path, "wb") as fh:
            for rec in simulator_records(SimulatorConfig(impressions=args.impressions, seed=args.seed)):
                fh.write(rec + b"\n")
                n += 1
                imps += rec.startswith(b'{"type":"impression"')
        print(f"stream: {n:,} records ({imps:,} impressions); {os.cpu_count()} cores; broker {args.bootstrap}")
        print(f"{'workers':>7}{'produce s':>10}{'ingest rec/s':>14}{'end-to-end s':>14}{'e2e rec/s':>11}{'max lag':>9}")
        for w in args.workers:
            r = run(w, path, n, imps, args.bootstrap, tmp)
            print(f"{w:>7}{r['produce_s']:>10.1f}{r['ingest_rate']:>14,.0f}{r['e2e_s']:>14.1f}{r['e2e_rate']:>11,.0f}{r['lag_max']:>9,.0f}",
                  flush=True)
            if "ready_after_sigterm_s" in r:
                print(f"        restart to /readyz: {r['ready_after_sigterm_s']:.1f} s after SIGTERM, "
                      f"{r['ready_after_sigkill_s']:.1f} s after SIGKILL", flush=True)


if __name__ == "__main__":
    main()
