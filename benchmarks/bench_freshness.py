"""Freshness: how soon after its horizon closes does a labelled example show in /metrics?

Target (the performance issue): within 2 s. For each runtime, a background stream flows at
``--rate`` records/s (impressions of experiment ``bg``, arms control/treatment, ~5% clicked)
while probes are sent one at a time. A probe is one impression of its own arm (experiment
``fresh``, arm ``probe``) at the current event time ``E``, followed by one impression and one
click at ``E + max(W, H) + lateness + 1 ms`` on *every* input partition, which moves every
partition's watermark past the probe's horizon. The wall time at which the broker acknowledged
those closing events (Kafka) or they were written to the pipe (embedded) starts the clock; it
stops when ``stream_lis_labelled_examples_total{experiment="fresh"}`` in /metrics, polled every
``--poll`` seconds, counts the probe. The background's event time then continues from the
closing events' time, so nothing it sends is late.

The probe's arm gets one example per probe, so its chunk never fills: it is evaluated by the
partial-chunk deadline ``runtime.max_batch_delay`` (the worker evaluates an arm whose partial
chunk waited that long, even while other arms are busy). Its setting is printed; the latency
includes it. Event time runs with the wall clock and the windows are seconds long, so the
background's own examples are released continuously, as in a live stream.

Runtimes:
* ``kafka``: one ``stream-lis worker`` on fresh topics (needs a broker: --bootstrap);
* ``embedded``: ``stream-lis run --input -`` fed through its stdin (live input: records are
  processed as they come and the same partial-chunk deadline applies).

Usage:
    python benchmarks/bench_freshness.py --bootstrap 127.0.0.1:9092 [--probes 8] [--rate 2000] [--runtime kafka embedded]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

from prometheus_client.parser import text_string_to_metric_families

from common import revision

CLI = [sys.executable, "-m", "stream_lis"]
TARGET_S = 2.0
#: Event time runs with the wall clock, so with windows of seconds the background's own
#: examples are released continuously (a live stream), and a probe's closing events move
#: the clock only a few seconds ahead.
WINDOWS = {"time.horizon": "3s", "time.attribution_window": "2s", "time.allowed_lateness": "500ms",
           "evaluation.window_size": 2000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_count(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            body = r.read().decode()
    except OSError:
        return None
    n = 0.0
    for fam in text_string_to_metric_families(body):
        if fam.name == "stream_lis_labelled_examples":
            n += sum(s.value for s in fam.samples if s.name.endswith("_total") and s.labels.get("experiment") == "fresh")
    return n


def wait(cond, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


class Clock:
    """Event time: runs with the wall clock from a base that probes move forward."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.base_ms = int(time.time() * 1000) - 3_600_000  # an hour ago: far from max_future_skew
        self.base_wall = time.monotonic()

    def now_ms(self) -> int:
        return self.base_ms + int((time.monotonic() - self.base_wall) * 1000)

    def jump_to(self, ts: int) -> None:
        self.base_ms, self.base_wall = ts, time.monotonic()


def impression(iid: str, ts: int, exp: str, arm: str, rnd: random.Random) -> dict:
    return {"type": "impression", "impression_id": iid, "ts": ts, "user_id": f"u{rnd.randrange(5000)}",
            "item_id": f"i{rnd.randrange(500)}", "experiment": exp, "arm": arm, "score": round(rnd.random() * 0.2, 4),
            "features": {"device": rnd.choice(["ios", "android", "web"]), "position": str(rnd.randrange(10))}}


class Background(threading.Thread):
    """``rate`` records/s through ``send(record_dict, key)`` until stopped."""

    def __init__(self, clock: Clock, rate: float, send) -> None:
        super().__init__(daemon=True)
        self.clock, self.rate, self.send = clock, rate, send
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        rnd = random.Random(1)
        t0, k = time.monotonic(), 0
        while not self.stop.is_set():
            with self.clock.lock:
                for _ in range(max(1, int(self.rate / 50))):
                    ts = self.clock.now_ms()
                    iid = f"bg{k}"
                    k += 1
                    self.send(impression(iid, ts, "bg", rnd.choice(["control", "treatment"]), rnd), iid)
                    self.sent += 1
                    if rnd.random() < 0.05:
                        self.send({"type": "click", "impression_id": iid, "ts": ts + 1}, iid)
                        self.sent += 1
            ahead = self.sent / self.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)


def run_probes(clock: Clock, n_probes: int, hold_ms: int, send_probe, port: int, poll_s: float, timeout_s: float) -> list[float | None]:
    out: list[float | None] = []
    base = fresh_count(port) or 0.0
    for k in range(n_probes):
        time.sleep(1.5)
        with clock.lock:
            ts = clock.now_ms()
            close = ts + hold_ms
            t_closed = send_probe(k, ts, close)
            clock.jump_to(close)
        deadline = t_closed + timeout_s
        seen = None
        while time.monotonic() < deadline:
            n = fresh_count(port)
            if n is not None and n >= base + 1:
                seen = time.monotonic() - t_closed
                base = n
                break
            time.sleep(poll_s)
        if seen is None:
            base = fresh_count(port) or base
        out.append(seen)
        print(f"  probe {k + 1}: " + (f"{seen:.2f} s" if seen is not None else f"not seen within {timeout_s:.0f} s"), flush=True)
    return out


def probe_under_load(bg: "Background", clock: "Clock", args, ov: dict, send_probe, port: int) -> list[float | None]:
    """Start the background stream, let it warm up, send the probes; stop the background."""
    bg.start()
    try:
        time.sleep(args.warmup)
        return run_probes(clock, args.probes, hold_ms(ov), send_probe, port, args.poll, args.timeout)
    finally:
        bg.stop.set()
        if bg.is_alive():
            bg.join(10)


def kafka_runtime(args, ov: dict) -> list[float | None]:
    from kafka import KafkaProducer

    p = "fresh" + uuid.uuid4().hex[:6]
    ov = {**ov, "kafka.group_id": p, **{f"kafka.topics.{t}": f"{p}-{t}" for t in
                                        ("impressions", "clicks", "preferences", "embeddings", "labelled", "dead_letters", "checkpoints")}}
    sets = [a for k, v in ov.items() for a in ("--set", f"{k}={v}")]
    subprocess.run([*CLI, "topics", "create", "--bootstrap", args.bootstrap, *sets], check=True, capture_output=True)
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="bench-freshness-", suffix=".log", delete=False)
    cmd = [*CLI, "worker", "--bootstrap", args.bootstrap, "--port", str(port), "--host", "127.0.0.1", *sets]
    print(f"  worker: {' '.join(os.path.relpath(c) if c == sys.executable else c for c in cmd[:3])} worker {' '.join(sets)} (log {log.name})")
    worker = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    prod = KafkaProducer(bootstrap_servers=args.bootstrap.split(","), linger_ms=5, acks="all")
    topics = {"impression": ov["kafka.topics.impressions"], "click": ov["kafka.topics.clicks"]}
    n_parts = int(ov.get("kafka.partitions", 4))

    def send(rec: dict, key: str) -> None:
        prod.send(topics[rec["type"]], key=key.encode(), value=json.dumps(rec).encode())

    def send_probe(k: int, ts: int, close: int) -> float:
        rnd = random.Random(k)
        pid = f"probe{k}-{uuid.uuid4().hex[:6]}"
        prod.send(topics["impression"], key=pid.encode(), value=json.dumps(impression(pid, ts, "fresh", "probe", rnd)).encode())
        prod.flush()
        futs = []
        for part in range(n_parts):
            cid = f"close{k}-{part}"
            futs.append(prod.send(topics["impression"], partition=part, key=cid.encode(),
                                  value=json.dumps(impression(cid, close, "bg", "control", rnd)).encode()))
            futs.append(prod.send(topics["click"], partition=part, key=cid.encode(),
                                  value=json.dumps({"type": "click", "impression_id": cid, "ts": close}).encode()))
        prod.flush()
        for f in futs:
            f.get(timeout=30)
        return time.monotonic()

    clock = Clock()
    bg = Background(clock, args.rate, send)
    try:
        def ready() -> bool:
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited: see {log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait(ready, 120, "the worker")
        return probe_under_load(bg, clock, args, ov, send_probe, port)
    finally:
        prod.close()
        worker.terminate()
        worker.wait(60)


def embedded_runtime(args, ov: dict) -> list[float | None]:
    port = free_port()
    sets = [a for k, v in ov.items() if not k.startswith("kafka.") for a in ("--set", f"{k}={v}")]
    cmd = [*CLI, "run", "--input", "-", "--port", str(port), "--host", "127.0.0.1", "--quiet", *sets]
    print(f"  run: {' '.join(cmd[2:])}")
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock = threading.Lock()

    def send(rec: dict, key: str) -> None:
        with lock:
            proc.stdin.write(json.dumps(rec).encode() + b"\n")

    def send_probe(k: int, ts: int, close: int) -> float:
        rnd = random.Random(k)
        pid = f"probe{k}-{uuid.uuid4().hex[:6]}"
        send(impression(pid, ts, "fresh", "probe", rnd), pid)
        send(impression(f"close{k}", close, "bg", "control", rnd), "")
        with lock:
            proc.stdin.flush()
        return time.monotonic()

    clock = Clock()
    bg = Background(clock, args.rate, send)
    try:
        wait(lambda: fresh_count(port) is not None, 60, "the embedded runtime's /metrics")
        return probe_under_load(bg, clock, args, ov, send_probe, port)
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass
        proc.terminate()
        proc.wait(60)


def hold_ms(ov: dict) -> int:
    from stream_lis.config import load_config

    t = load_config(None, {k: v for k, v in ov.items() if k.startswith("time.")}).time
    return max(t.horizon_ms, t.attribution_window_ms) + t.allowed_lateness_ms + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default=os.environ.get("STREAM_LIS_BOOTSTRAP", "127.0.0.1:9092"))
    ap.add_argument("--runtime", nargs="+", default=["kafka", "embedded"], choices=["kafka", "embedded"])
    ap.add_argument("--probes", type=int, default=8)
    ap.add_argument("--rate", type=float, default=2000, help="background records/s")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of background before the first probe")
    ap.add_argument("--poll", type=float, default=0.05, help="seconds between /metrics scrapes while waiting")
    ap.add_argument("--timeout", type=float, default=15.0, help="seconds a probe may take before it counts as not seen")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="extra config override")
    args = ap.parse_args()
    ov = dict(WINDOWS)
    # Idle partitions must not close windows by the wall clock here: only events do.
    ov["kafka.idle_partition_timeout"] = "60s"
    for kv in args.sets:
        k, _, v = kv.partition("=")
        ov[k] = v
    from stream_lis.config import load_config

    cfg = load_config(None, {k: v for k, v in ov.items() if not k.startswith("kafka.topics")})
    print(f"# {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"# background {args.rate:,.0f} rec/s; W {cfg.time.attribution_window}, H {cfg.time.horizon}, lateness "
          f"{cfg.time.allowed_lateness}; runtime.max_batch_delay {cfg.runtime.max_batch_delay}, heartbeat_interval "
          f"{cfg.kafka.heartbeat_interval}; {revision()}; {os.cpu_count()} cores")
    verdicts = []
    for rt in args.runtime:
        print(f"{rt}:", flush=True)
        lat = kafka_runtime(args, ov) if rt == "kafka" else embedded_runtime(args, ov)
        seen = [x for x in lat if x is not None]
        missing = len(lat) - len(seen)
        if seen:
            ok = not missing and max(seen) <= TARGET_S
            print(f"{rt}: {len(seen)}/{len(lat)} probes seen; latency min {min(seen):.2f} s, median "
                  f"{statistics.median(seen):.2f} s, max {max(seen):.2f} s"
                  + (f"; {missing} not seen within {args.timeout:.0f} s" if missing else "")
                  + f"  {'PASS' if ok else 'FAIL'} (target: every probe <= {TARGET_S:.0f} s)", flush=True)
        else:
            ok = False
            print(f"{rt}: no probe seen within {args.timeout:.0f} s  FAIL (target <= {TARGET_S:.0f} s)", flush=True)
        verdicts.append(ok)


if __name__ == "__main__":
    main()
