"""The Grafana dashboard: its structure, and every panel query run against a real Prometheus.

The queries run on the stack of the integration test (tests/ops_fixtures.py: the embedded
runtime scraped by Prometheus with the shipped rules). Template variables are replaced the way
Grafana would for "All": ``$experiment`` / ``$arm`` by a regex of the values Prometheus knows,
``$__rate_interval`` and friends by fixed durations. No query may error, and each must return
data, except the panels listed in ONLY_KAFKA_WORKER: their metric is exported by
`stream-lis worker` alone, so on the embedded runtime they are legitimately empty (they must
still run without error, and may read nothing but worker-only metrics).
"""

from __future__ import annotations

import json
import re
import time

import pytest

try:  # tests/ as a package or as a plain folder on sys.path
    from .ops_fixtures import DASHBOARD, OpsStack, ops_stack  # noqa: F401 (fixture)
except ImportError:
    from ops_fixtures import DASHBOARD, OpsStack, ops_stack  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(180)

#: Panels whose queries read metrics only the Kafka worker exports: title -> those metrics.
ONLY_KAFKA_WORKER = {"Consumer lag (Kafka worker)": ("topic:stream_lis_consumer_lag:sum", "stream_lis_consumer_lag"),
                     "Side tables (Kafka worker)": ("stream_lis_table_entries", "stream_lis_table_records_total"),
                     "Input keys other than impression_id (Kafka worker)": ("stream_lis_input_key_mismatch_total",),
                     "Seconds since each loop went round (Kafka worker)": ("stream_lis_loop_progress_timestamp_seconds",),
                     "Seconds without partitions, by stage (Kafka worker)": ("stream_lis_unassigned_seconds",)}

GRAFANA_INTERVALS = {"$__rate_interval": "1m", "${__rate_interval}": "1m", "$__interval": "15s",
                     "${__interval}": "15s", "$__range": "1h", "${__range}": "1h"}


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(panels: list[dict]) -> list[dict]:
    """Every panel, rows' nested panels included (rows themselves left out)."""
    out = []
    for p in panels:
        if p.get("type") == "row":
            out += _panels(p.get("panels", []))
        else:
            out.append(p)
    return out


def _targets() -> list[tuple[str, str, str]]:
    return [(p["title"], t["refId"], t["expr"]) for p in _panels(_dashboard()["panels"]) for t in p.get("targets", [])]


def _variables() -> dict[str, dict]:
    return {v["name"]: v for v in _dashboard()["templating"]["list"]}


def test_dashboard_is_schema_39_with_a_prometheus_datasource_variable() -> None:
    d = _dashboard()
    assert d["schemaVersion"] == 39 and d["uid"] and d["title"]
    ds = _variables()["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for p in _panels(d["panels"]):
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        for t in p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]


def test_experiment_and_arm_are_multi_select_query_variables_with_all() -> None:
    v = _variables()
    for name, query in (("experiment", 'label_values(stream_lis_lis{namespace=~"$namespace"}, experiment)'),
                        ("arm", 'label_values(stream_lis_lis{namespace=~"$namespace", experiment=~"$experiment"}, arm)')):
        var = v[name]
        assert var["type"] == "query" and var["multi"] and var["includeAll"], name
        assert var["definition"] == query and var["query"]["query"] == query, name
        assert var["datasource"]["uid"] == "${datasource}"


def test_every_query_keeps_to_the_chosen_namespace() -> None:
    """One Prometheus may scrape several deployments (staging, production) under the same job:
    a namespace variable chooses one ("All": every one, and series without the label, as a
    plain scrape gives), and every query keeps to it."""
    var = _variables()["namespace"]
    assert var["type"] == "query" and var["includeAll"] and var["allValue"] == ".*"
    assert var["definition"] == 'label_values(up{job="stream-lis"}, namespace)'
    names = list(_variables())
    assert names.index("namespace") < names.index("experiment")  # experiments of the chosen namespace
    for title, ref, expr in _targets():
        assert 'namespace=~"$namespace"' in expr, f"{title}:{ref} {expr}"
        # each metric the query reads carries the matcher (not only one of them)
        metrics = re.findall(r"(?<![\w:$])((?:stream_lis|[a-z_]+:stream_lis)[a-zA-Z0-9_:]*|up)(\{[^}]*\})?", expr)
        for metric, sel in metrics:
            assert 'namespace=~"$namespace"' in sel, f"{title}:{ref}: {metric} without the namespace matcher"


def test_ids_are_unique_and_panels_are_on_the_grid() -> None:
    panels = _dashboard()["panels"]
    ids = [p["id"] for p in panels] + [q["id"] for p in panels if p["type"] == "row" for q in p.get("panels", [])]
    assert len(ids) == len(set(ids))
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]


def test_the_dashboard_has_the_panels_the_issue_asks_for() -> None:
    panels = {p["title"]: p for p in _panels(_dashboard()["panels"])}
    exprs = {t: " ".join(x["expr"] for x in p["targets"]) for t, p in panels.items()}

    def panel(pattern: str) -> dict:
        found = [t for t in panels if re.search(pattern, t)]
        assert len(found) == 1, (pattern, found)
        return panels[found[0]]

    lis = panel(r"^LIS per probe")
    assert {"lis:max", "lis_ci_lower:max", "lis_ci_upper:max"} <= {e.split("stream_lis_")[1].split("{")[0] for e in
                                                                    (t["expr"] for t in lis["targets"])}
    # the band: each probe's upper bound is filled down to its lower bound
    fills = {o["matcher"]["options"]: prop["value"] for o in lis["fieldConfig"]["overrides"]
             for prop in o["properties"] if prop["id"] == "custom.fillBelowTo"}
    for probe in ("future_item", "next_click", "co_click", "noise", "external"):
        assert fills[f"{probe} upper"] == f"{probe} lower"
    ais = panel(r"^AIS, interval band")
    assert any(prop["value"] == "AIS lower" for o in ais["fieldConfig"]["overrides"] for prop in o["properties"]
               if prop["id"] == "custom.fillBelowTo")
    assert "alignment_efficiency" in exprs[panel(r"^Alignment efficiency")["title"]]
    auc = panel(r"^AUC per learner")
    assert "learner" in exprs[auc["title"]]
    assert auc["fieldConfig"]["defaults"]["unit"] == "none"  # an AUC, not a share: LIS beside it is in AUC
    ctr, volume = panel(r"^CTR per arm$"), panel(r"^Volume")
    assert ctr["gridPos"]["y"] == volume["gridPos"]["y"] and ctr["gridPos"]["x"] != volume["gridPos"]["x"]  # side by side
    assert "impressions" in exprs[volume["title"]]
    assert "records" in exprs[panel(r"^Event rate$")["title"]]
    # the positives' delay: every negative's is the attribution window, and quantiles over
    # all labels interpolate around it (figures no label has)
    assert "click_delay" in exprs[panel(r"^Label delay")["title"]]
    assert "consumer_lag" in exprs[panel(r"^Consumer lag")["title"]]
    assert "invalid_events" in exprs[panel(r"^Dead letters by reason$")["title"]]
    # per-arm panels are repeated by arm inside a row repeated by experiment
    rows = [p for p in _dashboard()["panels"] if p["type"] == "row"]
    assert any(r.get("repeat") == "experiment" for r in rows)
    assert lis.get("repeat") == "arm" and ais.get("repeat") == "arm"


def _substitute(expr: str, values: dict[str, list[str]]) -> str:
    for var, vals in values.items():
        regex = "(" + "|".join(re.escape(v) for v in sorted(vals)) + ")"
        expr = expr.replace("${" + var + "}", regex).replace("$" + var, regex)
    for var, dur in GRAFANA_INTERVALS.items():
        expr = expr.replace(var, dur)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


@pytest.fixture(scope="module")
def values(ops_stack: OpsStack) -> dict[str, list[str]]:  # noqa: F811
    """What Grafana's variables would offer, from Prometheus (the variables' own queries)."""
    ops_stack.wait_for(["stream_lis_lis", "experiment_arm_probe:stream_lis_alignment_efficiency:max",
                        "job_quantile:stream_lis_click_delay_seconds:histogram_quantile_rate5m"],
                       "the figures the panels read")
    experiments = ops_stack.api("label/experiment/values", **{"match[]": "stream_lis_lis"})
    assert experiments == ["lis_demo"]
    arms = ops_stack.api("label/arm/values", **{"match[]": 'stream_lis_lis{experiment=~"lis_demo"}'})
    assert arms == ["control", "treatment"]
    # The stack's scrape is a plain one, without a namespace label: the only value its series
    # hold is the empty one (what "All", ``.*``, also matches).
    return {"experiment": experiments, "arm": arms, "namespace": [""]}


@pytest.mark.slow  # runs on the Prometheus stack of the integration test
@pytest.mark.parametrize("title,ref,expr", _targets(), ids=[f"{t}:{r}" for t, r, _ in _targets()])
def test_panel_query_runs_and_returns_data(ops_stack: OpsStack, values: dict[str, list[str]],  # noqa: F811
                                           title: str, ref: str, expr: str) -> None:
    q = _substitute(expr, values)
    if title in ONLY_KAFKA_WORKER:
        allowed = ONLY_KAFKA_WORKER[title]
        names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", re.sub(r"\{[^}]*\}|\[[^]]*\]", "", q)))
        metrics = {n for n in names if n.startswith(("stream_lis", "topic:", "job:")) or ":" in n}
        assert metrics <= set(allowed), f"{title} may be empty only because it reads worker-only metrics: {metrics}"
        ops_stack.query(q)  # must not error
        now = time.time()
        ops_stack.api("query_range", query=q, start=f"{now - 60:.3f}", end=f"{now:.3f}", step="5")
        return

    def has_data() -> bool:
        return bool(ops_stack.query(q))

    # rates and quantiles need two scrapes of the moving counters: allow the stack to settle
    ops_stack._wait(has_data, f"panel {title!r} query {ref} to return data: {q}", deadline_s=30)
    # Grafana asks for a range: that must work too
    now = time.time()
    data = ops_stack.api("query_range", query=q, start=f"{now - 60:.3f}", end=f"{now:.3f}", step="5")
    assert data["resultType"] == "matrix" and data["result"], q


def test_only_the_documented_panels_may_be_empty() -> None:
    titles = {p["title"] for p in _panels(_dashboard()["panels"])}
    assert set(ONLY_KAFKA_WORKER) <= titles
