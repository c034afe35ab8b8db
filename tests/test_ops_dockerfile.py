"""The Dockerfile, parsed (no Docker engine here to build it): multi-stage, a pinned slim base,
runtime dependencies only in the final stage, a non-root user, the worker as entrypoint and a
healthcheck; and a .dockerignore that keeps the build context to the package."""

from __future__ import annotations

import json
import pathlib
import re
import shlex

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, "dangling line continuation"
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in _instructions():
        if ins[0] == "FROM":
            stages.append([])
        assert stages, f"{ins[0]} before the first FROM"
        stages[-1].append(ins)
    return stages


def _final() -> list[tuple[str, str]]:
    return _stages()[-1]


def _args(stage: list[tuple[str, str]], word: str) -> list[str]:
    return [a for w, a in stage if w == word]


def test_multi_stage_build() -> None:
    stages = _stages()
    assert len(stages) >= 2
    names = [re.search(r"\bAS\s+(\S+)", s[0][1], re.I) for s in stages[:-1]]
    assert all(names), "every stage but the last is named"
    # the final stage takes only the wheels from the build stage
    build = names[0].group(1)
    assert f"from={build}" in " ".join(_args(_final(), "RUN") + _args(_final(), "COPY"))


def test_final_base_is_a_pinned_slim_python_tag() -> None:
    for stage in _stages():
        image = stage[0][1].split()[0]
        name, _, tag = image.partition(":")
        assert name == "python", image
        assert re.fullmatch(r"3\.11(\.\d+)?-slim-bookworm(@sha256:[0-9a-f]{64})?", tag), image
        assert "latest" not in tag


def test_final_stage_runs_as_non_root() -> None:
    users = _args(_final(), "USER")
    assert users, "no USER in the final stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) == 10001  # numeric, so runAsNonRoot can check it
    # USER comes after the last RUN: nothing of the final image is built as another user after it
    words = [w for w, _ in _final()]
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")


def test_entrypoint_is_the_worker_and_the_metrics_port_is_exposed() -> None:
    [entry] = _args(_final(), "ENTRYPOINT")
    assert json.loads(entry) == ["stream-lis", "worker"]
    assert "9464" in _args(_final(), "EXPOSE")[0].split()


def test_healthcheck_uses_python_against_healthz() -> None:
    [hc] = _args(_final(), "HEALTHCHECK")
    assert "CMD" in hc
    cmd = json.loads(hc[hc.index("CMD") + 3:].strip())
    assert cmd[0] == "python" and "urllib.request" in cmd[-1] and "/healthz" in cmd[-1]
    assert "curl" not in hc and "wget" not in hc
    for opt in ("--interval=", "--timeout=", "--start-period="):
        assert opt in hc


def test_final_stage_installs_runtime_dependencies_only() -> None:
    runs = " ".join(_args(_final(), "RUN"))
    assert "pip install" in runs and "--no-index" in runs
    assert not re.search(r"\[test\]|stream-lis\[|pytest|kubernetes-validate", runs), runs
    for tool in ("build-essential", "gcc", "g++", "make", "apt-get install", "curl", "git"):
        assert not re.search(rf"(^|\s){re.escape(tool)}(\s|$)", runs), f"{tool} in the final stage"
    # the build stage builds wheels without the test extra
    build_runs = " ".join(_args(_stages()[0], "RUN"))
    assert "pip wheel" in build_runs and "[test]" not in build_runs


def test_the_healthcheck_command_is_valid_python() -> None:
    [hc] = _args(_final(), "HEALTHCHECK")
    code = json.loads(hc[hc.index("CMD") + 3:].strip())[-1]
    compile(code, "<healthcheck>", "exec")


def test_dockerignore_keeps_the_context_to_the_package() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "an allow-list: everything is ignored but what is named"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied = set()
    for w, a in _instructions():
        if w == "COPY" and "--from" not in a:
            copied |= {p.rstrip("/").removeprefix("./") for p in shlex.split(a)[:-1]}
    assert copied and copied <= allowed, (copied, allowed)
    assert not allowed & {".venv", ".git", "tests", "k8s", "monitoring"}


@pytest.mark.parametrize("name", ["pyproject.toml", "README.md", "stream_lis"])
def test_what_the_build_copies_exists(name: str) -> None:
    assert (ROOT / name).exists()


def test_the_healthcheck_passes_against_a_live_healthz_and_fails_without_one() -> None:
    import subprocess
    import sys

    from prometheus_client import CollectorRegistry

    from stream_lis.exporter import MetricsServer

    [hc] = _args(_final(), "HEALTHCHECK")
    code = json.loads(hc[hc.index("CMD") + 3:].strip())[-1]
    assert "127.0.0.1:9464" in code
    server = MetricsServer(CollectorRegistry(), 0, "127.0.0.1")
    try:
        live = code.replace("127.0.0.1:9464", f"127.0.0.1:{server.port}")
        assert subprocess.run([sys.executable, "-c", live], timeout=30).returncode == 0
    finally:
        server.close()
    # nothing listens on the port any more: the check must fail, not hang
    assert subprocess.run([sys.executable, "-c", live], capture_output=True, timeout=30).returncode != 0
