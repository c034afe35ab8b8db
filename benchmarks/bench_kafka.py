"""Kafka runtime throughput and recovery time, against a real broker.

For each worker count, a pre-generated simulator stream goes into fresh topics and is
consumed by that many ``stream-lis worker`` processes (same group), and it prints:

* ``mode live`` (the default): the stream is replayed while the workers run, as fast as the
  producer goes; ``mode backlog``: it is in the topics before the workers start, so the
  workers' own speed is measured (no producer competing for the cores);
* ingest rate: records/s the join stages consumed, from the start (of the replay, or of
  consumption for a backlog) to the last record;
* impressions/s labelled and evaluated (LIS updating) over the same span, until every
  impression is (the last windows close by ``kafka.idle_partition_timeout``, set to 2 s here);
* the largest consumer lag seen (all partitions of both stages, sampled every second);
* the workers' CPU seconds and ingest records per CPU second (a figure that moves less than
  wall-clock rates when others use the machine);
* restart (1 worker): seconds from starting a worker again (after SIGTERM, and after
  SIGKILL) until ``/readyz`` answers 200 (its state restored from the checkpoints);
* the command reproducing each row.

``--stages-alone`` also times each stage on its own (join, then evaluation on what the join
stage sent): what each stage does with a core to itself, as in a deployment with a
Deployment per stage and a broker elsewhere. ``--layout stage-per-process`` makes each worker two processes (``stream-lis worker --stage
join`` and ``--stage eval``), so the stages do not share one interpreter lock.

Usage: python benchmarks/bench_kafka.py --bootstrap 127.0.0.1:9092 [--impressions N] [--workers 1 2]
       [--mode live|backlog] [--layout one-process stage-per-process] [--set KEY=VALUE ...]
Needs a broker (scripts/kafka-broker.sh start).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from common import machine_pace, revision, write_stream

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


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def start_worker(sets: list[str], bootstrap: str, log, stage: str = "all") -> tuple[subprocess.Popen, int]:
    port = free_port()
    p = subprocess.Popen([*CLI, "worker", "--bootstrap", bootstrap, "--port", str(port), "--host", "127.0.0.1",
                          "--stage", stage, *sets], stdout=log, stderr=subprocess.STDOUT)
    return p, port


#: What one worker is, per layout: one process with both stages, or a process per stage.
LAYOUTS = {"one-process": ["all"], "stage-per-process": ["join", "eval"]}


def start_unit(sets: list[str], bootstrap: str, log, layout: str) -> list[tuple[subprocess.Popen, int]]:
    return [start_worker(sets, bootstrap, log, stage) for stage in LAYOUTS[layout]]


def wait(cond, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(0.2)
    raise SystemExit(f"timed out after {timeout} s")


def fresh_topics(bootstrap: str, tmp: str, extra: list[str] | None) -> tuple[list[str], Any]:
    """Topics and a consumer group of their own for one run: its ``--set`` arguments and log file."""
    p = "bench" + uuid.uuid4().hex[:6]
    ov = {"kafka.group_id": p, "kafka.idle_partition_timeout": "2s", "kafka.checkpoint_interval": "5s",
          **{f"kafka.topics.{t}": f"{p}-{t}" for t in ("impressions", "clicks", "preferences", "embeddings", "labelled", "dead_letters", "checkpoints")}}
    sets = [a for k, v in ov.items() for a in ("--set", f"{k}={v}")] + [a for kv in extra or () for a in ("--set", kv)]
    subprocess.run([*CLI, "topics", "create", "--bootstrap", bootstrap, *sets], check=True, capture_output=True)
    return sets, open(os.path.join(tmp, f"{p}.log"), "ab")


def stages_alone(path: str, n_records: int, n_imps: int, bootstrap: str, tmp: str, extra: list[str] | None) -> dict:
    """Each stage's speed with the machine to itself: the join stage on a backlog of input
    (to the last record read, and to the last label sent), then the evaluation stage on the
    labelled topic it filled (to every impression evaluated)."""
    sets, log = fresh_topics(bootstrap, tmp, extra)
    subprocess.run([*CLI, "replay", path, "--bootstrap", bootstrap, *sets], check=True, capture_output=True)
    proc, port = start_worker(sets, bootstrap, log, "join")
    wait(lambda: ready(port), 120)
    t0 = time.monotonic()
    wait(lambda: (lambda m: m.get("stream_lis_records_total", 0) + m.get("stream_lis_invalid_events_total", 0)
                  >= n_records)(metrics(port)), 900)
    read_s = time.monotonic() - t0
    wait(lambda: (lambda m: m and m.get("stream_lis_pending_impressions", 1) == 0)(metrics(port)), 900)
    sent_s = time.monotonic() - t0
    late = metrics(port).get("stream_lis_invalid_events_total", 0)
    proc.terminate()
    proc.wait(60)
    proc, port = start_worker(sets, bootstrap, log, "eval")
    wait(lambda: ready(port), 120)
    t0 = time.monotonic()
    wait(lambda: (lambda m: m.get("stream_lis_labelled_examples_total", 0) + late >= n_imps
                  and m.get("stream_lis_held_examples", 1) == 0)(metrics(port)), 900)
    eval_s = time.monotonic() - t0
    proc.terminate()
    proc.wait(60)
    return {"join_read_rate": n_records / read_s, "join_sent_s": sent_s, "eval_rate": n_imps / eval_s, "eval_s": eval_s}


def run(n_workers: int, path: str, n_records: int, n_imps: int, bootstrap: str, tmp: str, mode: str = "live",
        extra: list[str] | None = None, layout: str = "one-process") -> dict:
    sets, log = fresh_topics(bootstrap, tmp, extra)
    produced_s = 0.0
    if mode == "backlog":
        t = time.monotonic()
        subprocess.run([*CLI, "replay", path, "--bootstrap", bootstrap, *sets], check=True, capture_output=True)
        produced_s = time.monotonic() - t
    workers = [pp for _ in range(n_workers) for pp in start_unit(sets, bootstrap, log, layout)]
    for _, port in workers:
        wait(lambda: ready(port), 120)
    cpu0 = sum(cpu_seconds(proc.pid) for proc, _ in workers)
    t0 = time.monotonic()
    if mode == "live":
        subprocess.run([*CLI, "replay", path, "--bootstrap", bootstrap, *sets], capture_output=True, text=True)
        produced_s = time.monotonic() - t0
    lag_max, last, seen, cpu_ingest = 0.0, t0, 0.0, 0.0
    while True:
        ms = [metrics(port) for _, port in workers]
        recs = sum(m.get("stream_lis_records_total", 0) for m in ms)
        invalid = sum(m.get("stream_lis_invalid_events_total", 0) for m in ms)
        lag_max = max([lag_max] + [m.get("lag_max", 0.0) for m in ms])
        now = time.monotonic()
        if recs + invalid > seen:
            seen, last = recs + invalid, now
            cpu_ingest = sum(cpu_seconds(proc.pid) for proc, _ in workers) - cpu0
        labelled = sum(m.get("stream_lis_labelled_examples_total", 0) for m in ms)
        late = invalid
        if labelled + late >= n_imps and sum(m.get("stream_lis_held_examples", 0) for m in ms) == 0:
            break
        if now - t0 > 900:
            raise SystemExit("timed out")
        time.sleep(1.0)  # a scrape takes the stages' locks: do not slow them down much
    e2e = time.monotonic() - t0
    cpu = sum(cpu_seconds(proc.pid) for proc, _ in workers) - cpu0
    out = {"workers": n_workers, "records": n_records, "produce_s": produced_s,
           "ingest_rate": seen / max(1e-9, (last - t0)), "e2e_s": e2e, "e2e_rate": n_records / e2e,
           "imp_rate": n_imps / e2e, "lag_max": lag_max, "cpu_s": cpu,
           "rec_per_cpu_s": seen / max(1e-9, cpu_ingest)}
    if n_workers == 1:
        for sig, key in ((signal.SIGTERM, "ready_after_sigterm_s"), (signal.SIGKILL, "ready_after_sigkill_s")):
            for proc, _ in workers:
                proc.send_signal(sig)
                proc.wait(60)
            workers = start_unit(sets, bootstrap, log, layout)
            out[key] = wait(lambda: all(ready(port) for _, port in workers), 120)
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
    ap.add_argument("--mode", choices=["live", "backlog"], default="live",
                    help="live: replay while the workers run (default); backlog: replay first, then start them")
    ap.add_argument("--layout", choices=list(LAYOUTS), nargs="+", default=["one-process"],
                    help="what a worker is: one process running both stages (default), or a process per stage "
                    "(stream-lis worker --stage join / --stage eval)")
    ap.add_argument("--stages-alone", action="store_true",
                    help="also time each stage alone on a backlog: the join stage, then the evaluation stage on "
                    "what it sent (what each stage does with a core of its own)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="extra worker config override (e.g. kafka.max_poll_records=5000)")
    args = ap.parse_args()

    from stream_lis.runtime.kafka.settings import crc_accelerated  # what the workers (same Python) use

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "stream.jsonl")
        n, imps = write_stream(path, args.impressions, args.seed)
        print(f"stream: {n:,} records ({imps:,} impressions); {revision()}; {os.cpu_count()} cores; broker {args.bootstrap}; "
              f"mode {args.mode}; crc32c {'C' if crc_accelerated() else 'pure Python (pip install crc32c)'}")
        print(f"machine: {machine_pace()}")
        print(f"{'layout':>18}{'workers':>8}{'produce s':>10}{'ingest rec/s':>14}{'end-to-end s':>14}{'e2e rec/s':>11}{'imp/s':>9}"
              f"{'max lag':>9}{'cpu s':>7}{'rec/cpu-s':>10}")
        for layout, w in ((lay, w) for lay in args.layout for w in args.workers):
            r = run(w, path, n, imps, args.bootstrap, tmp, args.mode, args.sets, layout)
            print(f"{layout:>18}{w:>8}{r['produce_s']:>10.1f}{r['ingest_rate']:>14,.0f}{r['e2e_s']:>14.1f}{r['e2e_rate']:>11,.0f}"
                  f"{r['imp_rate']:>9,.0f}{r['lag_max']:>9,.0f}{r['cpu_s']:>7.1f}{r['rec_per_cpu_s']:>10,.0f}", flush=True)
            cmd = [os.path.relpath(sys.executable), "benchmarks/bench_kafka.py", "--bootstrap", args.bootstrap,
                   "--impressions", str(args.impressions), "--seed", str(args.seed), "--workers", str(w),
                   "--mode", args.mode, "--layout", layout, *[a for kv in args.sets for a in ("--set", kv)]]
            print(f"        reproduce: {' '.join(cmd)}", flush=True)
            if "ready_after_sigterm_s" in r:
                print(f"        restart to /readyz: {r['ready_after_sigterm_s']:.1f} s after SIGTERM, "
                      f"{r['ready_after_sigkill_s']:.1f} s after SIGKILL", flush=True)
        if args.stages_alone:
            r = stages_alone(path, n, imps, args.bootstrap, tmp, args.sets)
            print(f"stages alone (one process each, one after the other, backlog):\n"
                  f"  join stage: read {r['join_read_rate']:,.0f} records/s; every label sent after {r['join_sent_s']:.1f} s "
                  f"(the last windows close by the 2 s idle timeout)\n"
                  f"  evaluation stage: {r['eval_rate']:,.0f} impressions/s evaluated ({r['eval_s']:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
