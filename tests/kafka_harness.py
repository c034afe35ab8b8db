"""Running real workers against the local broker: processes, scrapes, waits (all bounded)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

BOOTSTRAP = os.environ.get("STREAM_LIS_BOOTSTRAP", "127.0.0.1:19092")
CLI = [sys.executable, "-m", "stream_lis"]

#: Small event-time windows so a few thousand simulated impressions span many horizons. Replays
#: run about a thousand times faster than the simulated clock, on a loaded machine: the two
#: time knobs that guard against a pause of the input are set well above its pauses.
FAST = {"time.horizon": "10m", "time.attribution_window": "5m", "evaluation.window_size": 2000,
        "kafka.idle_partition_timeout": "10s", "kafka.cross_topic_hold": "2s",
        "kafka.checkpoint_interval": "1s", "kafka.heartbeat_interval": "500ms", "runtime.max_batch_delay": "1s"}


def broker_up() -> bool:
    host, port = BOOTSTRAP.split(",")[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def require_broker() -> None:
    if broker_up():
        return
    if os.environ.get("CI"):
        pytest.fail(f"no Kafka broker at {BOOTSTRAP}: `make test` starts one (scripts/kafka-broker.sh)")
    pytest.skip(f"no Kafka broker at {BOOTSTRAP}; run `make test` or scripts/kafka-broker.sh start")


def broker_pid() -> int:
    """The test broker's process (scripts/kafka-broker.sh writes it beside its data), for tests
    that freeze it; skipped (failed under CI) where there is none."""
    pid_file = Path(os.environ.get("STREAM_LIS_KAFKA_DIR", "/tmp/stream-lis-kafka-test")) / "broker.pid"
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        if os.environ.get("CI"):
            pytest.fail(f"no broker pid at {pid_file}: `make test` starts the broker with scripts/kafka-broker.sh")
        pytest.skip(f"no broker pid at {pid_file} (a broker this test can pause: scripts/kafka-broker.sh)")


@contextlib.contextmanager
def broker_frozen(pid: int):
    """The broker stops answering (SIGSTOP) for the block, and goes on after it, whatever happens."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def http_get(port: int, path: str) -> tuple[int, str]:
    """A worker's ``path`` on 127.0.0.1: status and body, 503 included; ``(0, "")`` when
    nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def healthz(port: int) -> tuple[int, str]:
    """An in-process worker's ``/healthz``."""
    return http_get(port, "/healthz")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def namespace(extra: dict | None = None) -> dict:
    """Config overrides giving a test its own topics and consumer groups."""
    p = "t" + uuid.uuid4().hex[:8]
    ov = dict(FAST)
    ov.update({"kafka.group_id": p, **{f"kafka.topics.{t}": f"{p}-{t}" for t in
                                        ("impressions", "clicks", "preferences", "embeddings", "labelled", "dead_letters", "checkpoints")}})
    ov.update(extra or {})
    return ov


def set_args(ov: dict) -> list[str]:
    out = []
    for k, v in ov.items():
        out += ["--set", f"{k}={json.dumps(v) if not isinstance(v, str) else v}"]
    return out


def cli(*args: str, ov: dict, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args, "--bootstrap", BOOTSTRAP, *set_args(ov)], capture_output=True,
                          timeout=timeout, **kw)


def replay_in_background(path: Path, ov: dict, rate: int = 2500) -> threading.Thread:
    """``stream-lis replay`` of the file at ``rate`` records/s on a thread (started; join it)."""
    t = threading.Thread(target=lambda: cli("replay", str(path), "--rate", str(rate), ov=ov, timeout=300))
    t.start()
    return t


class WorkerProc:
    def __init__(self, ov: dict, log: Path, stage: str = "all") -> None:
        self.port = free_port()
        self.log = log
        self.fh = open(log, "ab")
        self.proc = subprocess.Popen([*CLI, "worker", "--bootstrap", BOOTSTRAP, "--port", str(self.port),
                                      "--host", "127.0.0.1", "--stage", stage, *set_args(ov)],
                                     stdout=self.fh, stderr=subprocess.STDOUT)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""
        except OSError:
            return 0, ""

    def wait_ready(self, timeout: float = 90) -> float:
        t0 = time.monotonic()
        wait_for(lambda: self.get("/readyz")[0] == 200, timeout, f"worker ready (log {self.log})", self.alive)
        return time.monotonic() - t0

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")

    def metrics(self) -> dict[str, list]:
        status, body = self.get("/metrics")
        if status != 200:
            return {}
        out: dict[str, list] = {}
        for f in text_string_to_metric_families(body):
            out[f.name] = [s for s in f.samples if not s.name.endswith("_created")]
            for smp in f.samples:  # also by sample name (counters' ``_total``)
                if smp.name != f.name and not smp.name.endswith("_created"):
                    out.setdefault(smp.name, []).append(smp)
        return out

    def summary(self) -> str:
        """What a stalled worker is waiting on: its clocks, buffers, lag and stage threads."""
        m = self.metrics()
        if not m:
            return "no /metrics answer"
        keys = ("stream_lis_records_total", "stream_lis_pending_impressions", "stream_lis_held_examples",
                "stream_lis_labelled_examples_total", "stream_lis_watermark_timestamp_seconds",
                "stream_lis_consumer_lag", "stream_lis_owned_partitions", "stream_lis_ready")
        return ", ".join(f"{k.removeprefix('stream_lis_')}={total(m, k):g}" for k in keys) + \
            f"; log tail: {self.log.read_text()[-600:]!r}"

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.fh.close()
        return self.proc.returncode


def wait_for(cond: Callable[[], bool], timeout: float, what: str, check: Callable[[], None] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check is not None:
            check()
        if cond():
            return
        time.sleep(0.5)
    owner = getattr(check, "__self__", None)  # waits on a worker say where it stands
    detail = f" (worker: {owner.summary()})" if hasattr(owner, "summary") else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")


def by_arm(samples: list, name: str | None = None, **labels: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in samples:
        if name is not None and s.name != name:
            continue
        if all(s.labels.get(k) == v for k, v in labels.items()):
            out[s.labels["arm"]] = out.get(s.labels["arm"], 0.0) + s.value
    return out


def per_partition(m: dict, name: str) -> dict[str, float]:
    """A worker's samples of a per-partition counter, by partition."""
    return {s.labels["partition"]: s.value for s in m.get(name, [])}


def total(m: dict, name: str, **labels: str) -> float:
    """Sum of the samples of a family or sample name, with the given labels."""
    return sum(s.value for s in m.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


def write_stream(path: Path, impressions: int, seed: int, **simulator) -> int:
    """A simulator stream as JSON Lines; returns how many impressions it holds. ``simulator``:
    more ``SimulatorConfig`` fields (``impressions_per_s``)."""
    from stream_lis.simulator import Simulator, SimulatorConfig

    events = [json.dumps(e).encode() for e in Simulator(SimulatorConfig(impressions=impressions, seed=seed, **simulator)).events()]
    path.write_bytes(b"\n".join(events) + b"\n")
    return sum(1 for e in events if b'"type": "impression"' in e)


def accounted(m: dict) -> float:
    """Impressions accepted or rejected as late: every impression ends up in one of the two."""
    return total(m, "stream_lis_impressions_total") + total(m, "stream_lis_invalid_events_total", reason="late_event")


def fresh_input(tmp_path: Path, impressions: int, seed: int, extra: dict | None = None) -> tuple[dict, Path, int]:
    """Topics of a test's own (``namespace``), created, and a simulator stream for them: the
    config overrides, the stream's file and how many impressions it holds."""
    ov = namespace(extra)
    path = tmp_path / "events.jsonl"
    n_imps = write_stream(path, impressions, seed)
    assert cli("topics", "create", ov=ov).returncode == 0
    return ov, path, n_imps


def counted_once(worker: "WorkerProc", n_imps: int, timeout: float, what: str,
                 check: Callable[[], None] | None = None) -> dict:
    """Wait for every impression to be settled, then check none was lost or counted twice and
    every accepted one has exactly one label; the worker's final metrics. ``check``: called
    at each look instead of ``worker.alive`` (it should call that too)."""
    wait_for(settled(worker, n_imps), timeout, what, check or worker.alive)
    m = worker.metrics()
    assert accounted(m) == n_imps  # none lost, none counted twice
    assert by_arm(m["stream_lis_labelled_examples_total"]) == by_arm(m["stream_lis_impressions_total"])
    return m


def settled(worker: "WorkerProc", n_imps: int) -> Callable[[], bool]:
    """True once every impression is accounted for and nothing is pending or held."""
    def check() -> bool:
        m = worker.metrics()
        return accounted(m) >= n_imps and total(m, "stream_lis_pending_impressions") == 0 \
            and total(m, "stream_lis_held_examples") == 0
    return check
