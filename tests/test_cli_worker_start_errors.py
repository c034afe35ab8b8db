"""`stream-lis worker` refuses a bad start in one line, before it reaches for the broker.

The bootstrap address here is closed on purpose: each of these must fail before any Kafka
client is made, with exit status 2 and no traceback; the last two reach for it (the
unreachable broker said once; a stop during that wait).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest

CLI = [sys.executable, "-m", "stream_lis", "worker", "--bootstrap", "127.0.0.1:1", "--host", "127.0.0.1"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, timeout=120)


def _one_line_error(proc: subprocess.CompletedProcess, *words: bytes) -> None:
    assert proc.returncode == 2, proc.stderr.decode()[-2000:]
    assert b"Traceback" not in proc.stderr
    for w in words:
        assert w in proc.stderr, proc.stderr.decode()


def test_metrics_port_already_taken():
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        _one_line_error(_run("--port", str(port)), b"cannot serve metrics", str(port).encode(), b"--port")


def test_port_out_of_range_and_unknown_log_level():
    _one_line_error(_run("--port", "99999"), b"--port", b"65535")
    _one_line_error(_run("--log-level", "LOUD"), b"--log-level", b"LOUD")


def test_learner_that_cannot_be_built():
    _one_line_error(_run("--set", "learner.model=nonexistent.Model"), b"learner.model")
    _one_line_error(_run("--set", 'learner.params={"no_such_param": 1}'), b"learner.params", b"no_such_param")


def test_misspelt_security_protocol():
    _one_line_error(_run("--set", "kafka.security_protocol=ssl"), b"kafka.security_protocol")


def test_a_compression_codec_whose_library_is_missing():
    from kafka import codec

    missing = [name for name, has in (("snappy", codec.has_snappy), ("lz4", codec.has_lz4),
                                      ("zstd", codec.has_zstd)) if not has()]
    if not missing:
        pytest.skip("every codec's library is installed here")
    _one_line_error(_run("--set", f"kafka.compression_type={missing[0]}"), b"kafka.compression_type",
                    b"is not installed")


def test_unreachable_broker_is_said_once_not_at_every_retry():
    """The worker waits kafka.startup_timeout for the broker (10 s here) while the client
    retries the bootstrap address, logging each failure; the operator sees each kind of
    failure once, then the worker's reason, and exit 1."""
    proc = subprocess.run([*CLI, "--port", "0", "--set", "kafka.startup_timeout=10s"], capture_output=True, timeout=180)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("stream-lis: Kafka:") and "bootstrap address reachable" in err
    assert "could not reach the broker at 127.0.0.1:1 within kafka.startup_timeout (10 s)" in err and "waiting for the broker at 127.0.0.1:1" in err
    refused = [line for line in err.splitlines() if "Connection failed" in line and "ECONNREFUSED" in line]
    assert len(refused) == 1, err


def test_stopped_while_the_broker_is_unreachable_exits_at_once_and_says_so():
    """A pod deleted while its broker is unreachable: SIGTERM while the worker waits for it
    (kafka.startup_timeout) ends the worker at once (nothing to checkpoint yet), with a line
    saying why."""
    proc = subprocess.Popen([*CLI, "--port", "0"], stderr=subprocess.PIPE)
    err = b""
    try:
        while b"connecting:" not in err:  # the worker is in the bootstrap wait
            line = proc.stderr.readline()
            assert line, err.decode()
            err += line
        time.sleep(1.0)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=20)[1]
        waited = time.monotonic() - t0
    finally:
        proc.kill()
    err = (err + rest).decode()
    assert proc.returncode == 0, err[-2000:]
    assert waited < 10, waited  # not kafka.startup_timeout's 5 minutes
    assert "SIGTERM while starting" in err and "Traceback" not in err, err
