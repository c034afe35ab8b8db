"""Live input on stdin: released examples reach /metrics while the input is still open.

A replay cuts chunks by count (deterministic figures); live input must not let a released
example wait for its chunk to fill: ``runtime.max_batch_delay`` evaluates a partial chunk.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from kafka_harness import free_port


def _labelled(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            body = resp.read().decode()
    except OSError:
        return -1.0
    return sum(s.value for f in text_string_to_metric_families(body) if f.name == "stream_lis_labelled_examples"
               for s in f.samples if s.name.endswith("_total"))


def _imp(k: int, ts: int) -> bytes:
    return json.dumps({"type": "impression", "impression_id": f"i{k}", "ts": ts, "user_id": f"u{k % 7}",
                       "item_id": f"a{k % 5}", "experiment": "e", "arm": "c"}).encode() + b"\n"


def test_a_partial_chunk_reaches_metrics_before_the_input_ends(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream_lis", "run", "--input", "-", "--port", str(port), "--host", "127.0.0.1",
         "--quiet", "--dead-letters", str(tmp_path / "dl.jsonl"),
         "--set", "time.attribution_window=2s", "--set", "time.horizon=3s", "--set", "time.allowed_lateness=0",
         "--set", "runtime.max_batch_delay=300ms", "--set", "probes.enabled=[]"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = 1_767_225_600_000
        # 40 impressions (far fewer than a 512-example chunk), then one 10 s later whose
        # event time closes all their windows and horizons.
        proc.stdin.write(b"".join(_imp(k, t0 + 10 * k) for k in range(40)))
        proc.stdin.write(_imp(99, t0 + 10_000))
        proc.stdin.flush()
        deadline = time.monotonic() + 20
        seen = -1.0
        while time.monotonic() < deadline and seen < 40:
            seen = _labelled(port)
            time.sleep(0.1)
        assert proc.poll() is None, "the run must still be reading its input"
        assert seen == 40  # the 40 released examples, evaluated as a partial chunk
    finally:
        proc.stdin.close()
        proc.wait(30)
