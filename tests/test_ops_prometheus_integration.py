"""A real Prometheus scrapes a real stream_lis runtime with the shipped rules loaded.

The embedded runtime evaluates 40,000 simulated impressions on a thread of this process while
Prometheus (Debian's, from scripts/setup-prometheus.sh) scrapes it every second on loopback and
evaluates monitoring/prometheus-rules.yaml every second. Everything is read back through
Prometheus's HTTP API.
"""

from __future__ import annotations

import math
import time

import pytest
import yaml

try:  # tests/ as a package or as a plain folder on sys.path
    from .ops_fixtures import DEADLINE_S, JOB, RULES, OpsStack, ops_stack  # noqa: F401 (fixture)
except ImportError:
    from ops_fixtures import DEADLINE_S, JOB, RULES, OpsStack, ops_stack  # noqa: F401 (fixture)

# a Prometheus server and ~10 s of streaming: not in `make test-fast`
pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

#: Raw series the rules and the dashboard read (README "Metrics").
RAW = [
    "stream_lis_lis", "stream_lis_lis_ci_lower", "stream_lis_lis_ci_upper",
    "stream_lis_ais", "stream_lis_ais_ci_lower", "stream_lis_ais_ci_upper",
    "stream_lis_alignment_efficiency", "stream_lis_auc", "stream_lis_production_auc",
    "stream_lis_impressions_total", "stream_lis_clicks_total", "stream_lis_ctr",
    "stream_lis_labelled_examples_total", "stream_lis_invalid_events_total", "stream_lis_click_joins_total",
    "stream_lis_label_delay_seconds_bucket", "stream_lis_records_total",
    "stream_lis_last_evaluation_timestamp_seconds", "stream_lis_watermark_lag_seconds", "stream_lis_build_info",
]

#: Recording rules that cannot have a value in this test, and why.
EMPTY_HERE = {
    # baselines: the day before the last hour; this Prometheus is a minute old
    "experiment_arm_probe:stream_lis_alignment_efficiency:avg1d_offset1h": "needs more than 1h of history",
    "experiment_arm_probe:stream_lis_lis_ci_lower:avg1d_offset1h": "needs more than 1h of history",
    # exported by the Kafka worker only
    "topic:stream_lis_consumer_lag:sum": "stream_lis_consumer_lag is a Kafka worker metric",
}


def _rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def _records() -> list[str]:
    return list(dict.fromkeys(r["record"] for r in _rules() if "record" in r))


def _value(sample: dict) -> float:
    return float(sample["value"][1])


def _labels(sample: dict) -> dict[str, str]:
    return {k: v for k, v in sample["metric"].items() if k != "__name__"}


@pytest.fixture(scope="module")
def settled(ops_stack: OpsStack) -> OpsStack:  # noqa: F811
    """Every raw series and recording rule has a value, and the input is fully evaluated."""
    ops_stack.wait_for(RAW, "every raw stream_lis series in Prometheus")
    ops_stack.wait_for([r for r in _records() if r not in EMPTY_HERE], "every recording rule to have a value")
    ops_stack.feeder.join(timeout=DEADLINE_S)
    assert not ops_stack.feeder.is_alive(), "the runtime did not finish its input in time"
    assert ops_stack.feed_error is None, ops_stack.feed_error
    return ops_stack


def test_prometheus_scrapes_the_runtime(settled: OpsStack) -> None:
    targets = settled.api("targets")["activeTargets"]
    ours = [t for t in targets if t["labels"]["job"] == JOB]
    assert len(ours) == 1 and ours[0]["health"] == "up", ours
    assert ours[0]["scrapeUrl"] == f"http://{settled.target}/metrics"
    assert settled.query(f'up{{job="{JOB}"}} == 1')


def test_every_rule_is_loaded_and_evaluates_without_error(settled: OpsStack) -> None:
    groups = settled.api("rules")["groups"]
    loaded = {g["name"]: [(r["type"], r["name"]) for r in g["rules"]] for g in groups}
    shipped = {g["name"]: [("alerting", r["alert"]) if "alert" in r else ("recording", r["record"]) for r in g["rules"]]
               for g in yaml.safe_load(RULES.read_text())["groups"]}
    assert loaded == shipped
    for g in groups:
        for r in g["rules"]:
            assert r["health"] in ("ok", "unknown"), (r["name"], r.get("lastError"))
            assert not r.get("lastError"), (r["name"], r["lastError"])
    # health "unknown" only before a rule's first evaluation: after a few seconds all are "ok"
    settled._wait(lambda: all(r["health"] == "ok" for g in settled.api("rules")["groups"] for r in g["rules"]),
                  "every rule evaluated")


@pytest.mark.parametrize("record", [r for r in _records() if r not in EMPTY_HERE])
def test_recording_rule_has_values(settled: OpsStack, record: str) -> None:
    result = settled.query(record)
    assert result, f"{record} has no value"
    for s in result:
        v = _value(s)
        assert not math.isinf(v), (record, s)
        if "histogram_quantile" not in record:  # a quantile may be NaN for a moment
            assert not math.isnan(v), (record, s)


def test_rules_that_cannot_have_values_here_are_only_the_documented_ones(settled: OpsStack) -> None:
    for record, why in EMPTY_HERE.items():
        assert record in _records()
        assert settled.query(record) == [], f"{record} unexpectedly has a value ({why}): update EMPTY_HERE"


def test_arm_figures_match_the_runtime(settled: OpsStack) -> None:
    snap = settled.runtime.snapshot()
    want = {(a.experiment, a.arm, p): iv.value for a in snap.arms for p, iv in a.lis.items()
            if iv.value is not None and math.isfinite(iv.value)}
    assert want

    def same() -> bool:
        got = {(s["metric"]["experiment"], s["metric"]["arm"], s["metric"]["probe"]): _value(s)
               for s in settled.query("experiment_arm_probe:stream_lis_lis:max")}
        return got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-9 for k in want)

    # the last scrape and evaluation after the end of the input catch up within a few seconds
    settled._wait(same, "LIS recorded by Prometheus to equal the runtime's final LIS", deadline_s=20)
    arms = {(s["metric"]["experiment"], s["metric"]["arm"]) for s in settled.query("experiment_arm:stream_lis_ais:max")}
    assert arms == {("lis_demo", "control"), ("lis_demo", "treatment")}
    # the planted truth, seen through Prometheus: the treatment MLLM helps more than control's
    ais = {s["metric"]["arm"]: _value(s) for s in settled.query("experiment_arm:stream_lis_ais:max")}
    assert ais["treatment"] > ais["control"]
    for s in settled.query("experiment_arm_probe:stream_lis_alignment_efficiency:max"):
        assert s["metric"]["probe"] != "noise"  # efficiency only where LIS is significant
    lo = {tuple(sorted(_labels(s).items())): _value(s) for s in settled.query("experiment_arm_probe:stream_lis_lis_ci_lower:max")}
    hi = {tuple(sorted(_labels(s).items())): _value(s) for s in settled.query("experiment_arm_probe:stream_lis_lis_ci_upper:max")}
    assert lo.keys() == hi.keys() and all(lo[k] <= hi[k] for k in lo)


def test_pipeline_rates_and_quantiles(settled: OpsStack) -> None:
    [records] = settled.query("job:stream_lis_records:rate5m")
    assert _labels(records) == {"job": JOB} and _value(records) > 0
    reasons = {s["metric"]["reason"]: _value(s) for s in settled.query("job_reason:stream_lis_invalid_events:rate5m")}
    assert {"unparseable", "wrong_type", "missing_field"} <= reasons.keys(), reasons
    [ratio] = settled.query("job:stream_lis_invalid_events:ratio_rate5m")
    assert 0 <= _value(ratio) < 0.01  # a healthy stream: well below the alert's 1%
    imps = settled.query("experiment_arm:stream_lis_impressions:rate5m")
    assert {s["metric"]["arm"] for s in imps} == {"control", "treatment"} and all(_value(s) > 0 for s in imps)

    def quantiles() -> dict[str, float]:
        q = {s["metric"]["quantile"]: _value(s)
             for s in settled.query("job_quantile:stream_lis_click_delay_seconds:histogram_quantile_rate5m")}
        return q if len(q) == 3 and not any(math.isnan(v) for v in q.values()) else {}

    settled._wait(lambda: bool(quantiles()), "click delay quantiles")
    q = quantiles()
    # clicks come within the attribution window (5m here): the 600 s bucket holds 300 s
    assert 0 < q["0.5"] <= q["0.9"] <= q["0.99"] <= 600, q


def test_a_healthy_stream_raises_no_alert(settled: OpsStack) -> None:
    rules = [r for g in settled.api("rules")["groups"] for r in g["rules"] if r["type"] == "alerting"]
    assert {r["name"] for r in rules} == {r["alert"] for r in _rules() if "alert" in r}
    time.sleep(1.5)  # at least one evaluation with every figure present
    active = settled.api("alerts")["alerts"]
    assert active == [], active
