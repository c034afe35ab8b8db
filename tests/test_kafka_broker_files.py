"""The broker script and the compose file describe the same broker."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def script_version() -> str:
    m = re.search(r'KAFKA_VERSION="\$\{STREAM_LIS_KAFKA_VERSION:-([0-9.]+)\}"', (ROOT / "scripts/kafka-broker.sh").read_text())
    assert m
    return m.group(1)


def test_compose_runs_the_scripts_kafka_version_in_kraft_mode_on_loopback():
    svc = yaml.safe_load((ROOT / "scripts/kafka/compose.yaml").read_text())["services"]["kafka"]
    assert svc["image"] == f"apache/kafka:{script_version()}"
    env = svc["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert svc["ports"] == ["127.0.0.1:9092:9092"]
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://127.0.0.1:9092"


def test_pom_resolves_the_same_version():
    pom = (ROOT / "scripts/kafka/pom.xml").read_text()
    assert "kafka_2.13" in pom and script_version() in pom


def test_broker_script_explains_itself():
    out = subprocess.run(["bash", str(ROOT / "scripts/kafka-broker.sh"), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for word in ("start", "stop", "status", "fetch", "STREAM_LIS_KAFKA_PORT"):
        assert word in out.stdout
