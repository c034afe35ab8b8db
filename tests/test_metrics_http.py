"""/metrics served over real HTTP carries every series with bounded labels."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream_lis.config import load_config
from stream_lis.runtime.embedded import EmbeddedRuntime
from stream_lis.runtime.sources import simulator_records
from stream_lis.simulator import SimulatorConfig

ALLOWED_LABELS = {"experiment", "arm", "learner", "probe", "window", "reason", "outcome", "label", "le",
                  "version", "python", "bound", "kind"}


@pytest.fixture(scope="module")
def served():
    cfg = load_config(None, {"evaluation.window_size": 2000, "time.horizon": "10m", "time.attribution_window": "5m"})
    rt = EmbeddedRuntime(cfg, port=0, host="127.0.0.1")
    records = list(simulator_records(SimulatorConfig(impressions=12_000, seed=3)))
    records.insert(10, b'{"type": "impression", "ts": "not a time"}')
    records.insert(20, b"not json")
    rt.run(records, report_every_s=None)
    yield rt
    rt.close()


def _get(rt, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{rt.server.port}{path}", timeout=10) as resp:
        return resp.status, resp.headers.get("Content-Type"), resp.read().decode()


def _families(rt):
    return {f.name: f for f in text_string_to_metric_families(_get(rt, "/metrics")[2])}


def test_metrics_endpoint_serves_prometheus_text(served):
    status, ctype, body = _get(served, "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    assert "# HELP stream_lis_lis " in body


def test_every_documented_series_is_present_with_the_right_labels(served):
    fams = _families(served)
    expected = {
        "stream_lis_auc": {"experiment", "arm", "learner", "window"},
        "stream_lis_lis": {"experiment", "arm", "probe"},
        "stream_lis_lis_ci_lower": {"experiment", "arm", "probe"},
        "stream_lis_lis_ci_upper": {"experiment", "arm", "probe"},
        "stream_lis_ais": {"experiment", "arm"},
        "stream_lis_ais_ci_lower": {"experiment", "arm"},
        "stream_lis_ais_ci_upper": {"experiment", "arm"},
        "stream_lis_impressions": {"experiment", "arm"},
        "stream_lis_clicks": {"experiment", "arm"},
        "stream_lis_labelled_examples": {"experiment", "arm", "label"},
        "stream_lis_ctr": {"experiment", "arm"},
        "stream_lis_production_auc": {"experiment", "arm", "window"},
        "stream_lis_invalid_events": {"reason"},
        "stream_lis_click_joins": {"outcome"},
        "stream_lis_shed": {"bound"},
        "stream_lis_label_delay_seconds": set(),
        "stream_lis_click_delay_seconds": set(),
        "stream_lis_pending_impressions": set(),
        "stream_lis_watermark_timestamp_seconds": set(),
        "stream_lis_watermark_lag_seconds": set(),
        "stream_lis_build_info": {"version", "python"},
    }
    for name, labels in expected.items():
        assert name in fams, f"missing family {name}"
        samples = fams[name].samples
        assert samples, f"{name} has no samples"
        for s in samples:
            got = set(s.labels) - {"le"}
            assert got == labels, (name, s.labels)


def test_labels_are_bounded_never_user_or_item_ids(served):
    for fam in _families(served).values():
        for s in fam.samples:
            assert set(s.labels) <= ALLOWED_LABELS, s
            for v in s.labels.values():
                assert not v.startswith(("user", "item", "imp")), s


def test_metric_values_match_the_engine_snapshot(served):
    snap = served.snapshot()
    fams = _families(served)
    lis = {(s.labels["arm"], s.labels["probe"]): s.value for s in fams["stream_lis_lis"].samples}
    for arm in snap.arms:
        for probe, iv in arm.lis.items():
            assert lis[(arm.arm, probe)] == pytest.approx(iv.value, abs=1e-12)
    labelled = sum(s.value for s in fams["stream_lis_labelled_examples"].samples)
    assert labelled == sum(a.labelled for a in snap.arms) > 0
    invalid = {s.labels["reason"]: s.value for s in fams["stream_lis_invalid_events"].samples}
    assert invalid["unparseable"] == 1 and invalid["wrong_type"] == 1


def test_ratios_are_in_unit_range_and_counters_end_in_total(served):
    body = _get(served, "/metrics")[2]
    for fam in text_string_to_metric_families(body):
        if fam.type == "counter":
            assert f"# TYPE {fam.name}_total counter" in body or f"# TYPE {fam.name} counter" in body
            assert all(s.name.endswith(("_total", "_created")) for s in fam.samples)
    for s in _families(served)["stream_lis_auc"].samples + _families(served)["stream_lis_ctr"].samples:
        assert 0.0 <= s.value <= 1.0


def test_healthz_and_unknown_paths(served):
    assert _get(served, "/healthz")[0] == 200
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(served, "/nope")
    assert err.value.code == 404


def test_series_of_an_ended_experiment_are_removed(served):
    assert any(s.labels.get("experiment") == "lis_demo" for s in _families(served)["stream_lis_lis"].samples)
    with served.lock:
        final = served.engine.end_experiment("lis_demo")
    assert final and all(a.labelled > 0 for a in final)
    fams = _families(served)
    assert not fams.get("stream_lis_lis") or not fams["stream_lis_lis"].samples
    assert not any(s.labels.get("experiment") == "lis_demo" for f in fams.values() for s in f.samples)
    assert fams["stream_lis_experiments_ended"].samples[0].value == 1
