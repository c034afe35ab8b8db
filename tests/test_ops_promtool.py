"""The shipped Prometheus rules: promtool's checks and unit tests, and their coverage.

Every alert of monitoring/prometheus-rules.yaml must have, in prometheus-rules.test.yaml, a
test that expects it to fire and one that expects it to stay silent (``exp_alerts: []``), and
``promtool test rules`` must pass them. promtool comes from scripts/setup-prometheus.sh; without
it these tests skip, except in CI, where they fail.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

try:  # tests/ as a package or as a plain folder on sys.path
    from .ops_fixtures import MONITORING, RULE_TESTS, RULES, require_tool
except ImportError:
    from ops_fixtures import MONITORING, RULE_TESTS, RULES, require_tool

pytestmark = pytest.mark.timeout(120)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("promtool"), *args], capture_output=True, text=True, timeout=100,
                          cwd=MONITORING, stdin=subprocess.DEVNULL)


def _alerts() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules() -> None:
    res = _promtool("check", "rules", RULES.name)
    assert res.returncode == 0, res.stdout + res.stderr
    n = sum(len(g["rules"]) for g in yaml.safe_load(RULES.read_text())["groups"])
    assert f"SUCCESS: {n} rules found" in res.stdout


def test_promtool_check_example_config() -> None:
    res = _promtool("check", "config", "prometheus.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    res = _promtool("test", "rules", RULE_TESTS.name)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_the_unit_tests_load_the_shipped_rules() -> None:
    doc = yaml.safe_load(RULE_TESTS.read_text())
    assert doc["rule_files"] == [RULES.name]


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    fires: dict[str, int] = {}
    silent: dict[str, int] = {}
    for group in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in group.get("alert_rule_test", []):
            bucket = fires if case.get("exp_alerts") else silent
            bucket[case["alertname"]] = bucket.get(case["alertname"], 0) + 1
    names = [a["alert"] for a in _alerts()]
    assert len(names) == len(set(names)), "an alert is defined twice"
    for name in names:
        assert fires.get(name), f"no test case in which {name} fires"
        assert silent.get(name), f"no test case in which {name} stays silent"
    assert set(fires) | set(silent) <= set(names), "a test names an alert the rules do not define"


def test_the_expected_alerts_name_their_experiment_and_arm() -> None:
    # the firing cases' expected labels carry the experiment and arm wherever the alert has them
    for group in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in group.get("alert_rule_test", []):
            for alert in case.get("exp_alerts") or []:
                labels, summary = alert["exp_labels"], alert["exp_annotations"]["summary"]
                for key in ("experiment", "arm"):
                    if key in labels:
                        assert labels[key] in summary, (case["alertname"], summary)


def test_every_alert_has_for_severity_summary_and_description() -> None:
    for rule in _alerts():
        name = rule["alert"]
        assert rule.get("for"), f"{name} has no `for:`"
        assert rule.get("labels", {}).get("severity") in {"critical", "warning", "info"}, name
        ann = rule.get("annotations", {})
        assert ann.get("summary") and ann.get("description"), name
        # an alert about an arm says which in its summary
        if "experiment" in rule["expr"] or "experiment_arm" in rule["expr"]:
            assert "{{ $labels.experiment }}" in ann["summary"] and "{{ $labels.arm }}" in ann["summary"], name


def test_recording_rules_are_defined_once_with_level_metric_operations_names() -> None:
    seen = set()
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "record" not in rule:
                continue
            name = rule["record"]
            level, metric, ops = name.split(":")
            assert level and metric.startswith("stream_lis_") and ops, name
            key = (name, tuple(sorted((rule.get("labels") or {}).items())))
            assert key not in seen, f"{name} defined twice"
            seen.add(key)
