"""Shared fixtures of the operations tests (tests/test_ops_*.py): a real Prometheus on loopback
scraping a real stream_lis embedded runtime, with the shipped rules loaded.

Imported by the test modules (``from ops_fixtures import ...``), not a conftest. The stack is
started once per pytest session, whichever module asks first, and stopped at the end of the
session: the integration test and the dashboard test query the same server.

Where ``prometheus`` / ``promtool`` are missing (install them with scripts/setup-prometheus.sh),
the tests that need them skip with that reason, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
MONITORING = ROOT / "monitoring"
RULES = MONITORING / "prometheus-rules.yaml"
RULE_TESTS = MONITORING / "prometheus-rules.test.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"

JOB = "stream-lis"
#: Upper bound for the stack to come up and every figure to reach Prometheus.
DEADLINE_S = 60.0


def require_tool(name: str) -> str:
    """The tool's path; skip without it, but fail in CI, where scripts/setup-prometheus.sh installs it."""
    path = shutil.which(name)
    if path:
        return path
    msg = (f"`{name}` is not on PATH: run scripts/setup-prometheus.sh as root "
           f"(apt-get install --no-install-recommends prometheus)")
    if os.environ.get("CI"):
        pytest.fail(f"{msg}; in CI it must be installed")
    pytest.skip(msg)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class PromError(AssertionError):
    pass


class OpsStack:
    """The embedded runtime (in this process, on a thread) and a Prometheus server (subprocess)."""

    def __init__(self) -> None:
        self.prometheus = require_tool("prometheus")
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="stream-lis-prom-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.runtime: Any = None
        self.feeder: threading.Thread | None = None
        self.feed_error: BaseException | None = None
        self.log_path = self.tmp / "prometheus.log"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        from stream_lis.config import load_config
        from stream_lis.runtime.embedded import EmbeddedRuntime

        cfg = load_config(None, {"time.horizon": "10m", "time.attribution_window": "5m"})
        self.runtime = EmbeddedRuntime(cfg, port=0, host="127.0.0.1")
        self.target = f"127.0.0.1:{self.runtime.server.port}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = self.tmp / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [self.target]}]}],
        }, indent=2))
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.prometheus, f"--config.file={config}", f"--storage.tsdb.path={self.tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.tmp)
        log.close()
        self._wait(lambda: http_get(self.url + "/-/ready", 2)[0] == 200, "Prometheus ready")
        self._wait(self._target_up, "the stream-lis target up")
        # Feed the runtime while Prometheus scrapes it every second, so counters grow between
        # scrapes (rates > 0) and the figures appear as the learners evaluate.
        self.feeder = threading.Thread(target=self._feed, name="ops-feed", daemon=True)
        self.feeder.start()

    def _feed(self) -> None:
        from stream_lis.runtime.sources import simulator_records
        from stream_lis.simulator import SimulatorConfig

        def paced():
            for k, rec in enumerate(simulator_records(SimulatorConfig(impressions=40_000, seed=7))):
                if k == 500:  # a few records that fail validation: dead letters with reasons
                    yield b"not json"
                    yield b'{"type": "impression", "impression_id": "x", "ts": "yesterday"}'
                    yield b'{"type": "impression", "ts": 1}'
                if k % 2000 == 1999:
                    time.sleep(0.2)  # ~5 s in all: several scrapes see the counters move
                yield rec

        try:
            self.runtime.run(paced(), report_every_s=None)
        except BaseException as exc:  # surfaced by wait_for_data
            self.feed_error = exc

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.feeder is not None:
            self.feeder.join(timeout=30)
        if self.runtime is not None:
            self.runtime.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- Prometheus HTTP API ---------------------------------------------------------------
    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body = http_get(url, 10)
        doc = json.loads(body)
        if status != 200 or doc.get("status") != "success":
            raise PromError(f"{path} {params}: HTTP {status}: {doc.get('errorType')}: {doc.get('error')}")
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; raises PromError when Prometheus rejects it."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def _target_up(self) -> bool:
        targets = self.api("targets")["activeTargets"]
        return any(t["labels"].get("job") == JOB and t["health"] == "up" for t in targets)

    def _wait(self, ok, what: str, deadline_s: float = DEADLINE_S) -> None:
        end = time.monotonic() + deadline_s
        last: BaseException | None = None
        while time.monotonic() < end:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited ({self.proc.returncode}): {self.log_path.read_text()[-2000:]}")
            try:
                if ok():
                    return
            except (OSError, PromError, ValueError, KeyError) as exc:
                last = exc
            time.sleep(0.25)
        raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what} (last error: {last})")

    def wait_for(self, exprs: list[str], what: str) -> None:
        """Until every expression returns at least one sample (bounded by DEADLINE_S)."""
        def ok() -> bool:
            if self.feed_error is not None:
                raise AssertionError(f"the runtime failed: {self.feed_error!r}")
            return all(self.query(e) for e in exprs)
        self._wait(ok, what)


_STACK: OpsStack | None = None
_STACK_ERROR: str | None = None


@pytest.fixture(scope="session")
def ops_stack(request: pytest.FixtureRequest) -> OpsStack:
    """The running stack, shared by every module that uses it in this session."""
    global _STACK, _STACK_ERROR
    if _STACK_ERROR is not None:  # started once and failed: do not wait out the deadline again
        pytest.fail(f"the Prometheus stack failed to start earlier in this session: {_STACK_ERROR}")
    if _STACK is None:
        stack = OpsStack()  # skips (or fails in CI) without prometheus
        request.config.add_cleanup(stack.stop)
        try:
            stack.start()
        except BaseException as exc:
            _STACK_ERROR = f"{type(exc).__name__}: {exc}"
            raise
        _STACK = stack
    return _STACK
