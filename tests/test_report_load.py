"""The report's inputs are read tolerantly and into the same shape (no plotting here: fast)."""

from __future__ import annotations

import json

import pytest

from stream_lis.report import ReportError, load_file
from stream_lis.report.load import parse_metrics, scrape_metrics


def _arm(arm: str, lis: float, ais: float | None = 0.01, emb: bool = True) -> dict:
    return {"experiment": "e", "arm": arm, "window_examples": 100, "has_embeddings": emb,
            "learners": {"clean": {"auc_window": 0.7, "auc_cumulative": 0.69},
                         "leaky:p": {"auc_window": 0.7 + lis, "auc_cumulative": 0.7},
                         "mllm": {"auc_window": 0.71, "auc_cumulative": 0.7}},
            "lis": {"p": {"value": lis, "low": lis - 0.01, "high": lis + 0.01, "se": 0.005}},
            "ais": None if ais is None else {"value": ais, "low": ais - 0.02, "high": ais + 0.02, "se": 0.01},
            "efficiency": {"p": None}, "production_auc_window": 0.68, "ctr": 0.05,
            "labelled": {"positive": 5, "negative": 95, "total": 100}, "impressions": 100}


def test_history_keeps_the_last_run_and_skips_a_torn_last_line(tmp_path):
    lines = [{"run_id": "a", "t_wall": 1.0, "watermark_ms": 1000, "records": 10, "arms": [_arm("c", 0.5)]},
             {"run_id": "b", "t_wall": 2.0, "watermark_ms": None, "records": 0, "arms": []},
             {"run_id": "b", "t_wall": 3.0, "watermark_ms": 2000, "records": 20, "arms": [_arm("c", 0.02)]},
             {"run_id": "b", "t_wall": 4.0, "watermark_ms": 3000, "records": 30, "final": True,
              "arms": [_arm("c", 0.03, emb=False)],
              "label_delay": {"le": [1, 5, "+Inf"], "counts": [1, 2, 3], "sum": 20.5}}]
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"run_id": "b", "t_wa')
    src = load_file(str(path))
    assert src.kind == "history" and [p.records for p in src.points] == [20, 30]  # run b; its empty point dropped
    assert any("unreadable" in n for n in src.notes) and any("last of 2 runs" in v for _, v in src.info)
    last = src.final.arms[0]
    assert last.lis["p"].value == pytest.approx(0.03) and last.lis["p"].significant
    assert last.ais is None and "mllm" not in last.auc  # no embeddings: no mllm learner, no AIS
    ld = src.final.label_delay
    assert ld.bounds[-1] == float("inf") and ld.counts == [1, 2, 3] and ld.total_s == 20.5


def test_offline_shapes_are_read_tolerantly(tmp_path):
    doc = {"mode": "offline", "split": {"at_ms": 5000, "at": "1970-01-01 00:00:05", "spec": "50%"},
           "confidence_level": 0.9, "config": {"time": {"horizon": "1h"}},
           "arms": [{"experiment": "e", "arm": "a", "n_train": 10, "n_test": 8, "ctr_test": 0.25,
                     "auc": {"clean": 0.6, "leaky:p": 0.7, "mllm": 0.65},
                     "lis": {"p": {"value": 0.1, "low": 0.05, "high": 0.15}}, "ais": {"value": 0.05, "ci": [0.0, 0.1]},
                     "efficiency": {"p": 0.5}},
                    {"experiment": "e", "arm": "b", "learners": {"clean": 0.6, "leaky:p": {"auc": 0.62}, "mllm": {"value": 0.61}}},
                    {"experiment": "e", "arm": "z", "skipped": "no test examples"}]}
    path = tmp_path / "o.json"
    path.write_text(json.dumps(doc))
    src = load_file(str(path))
    assert src.kind == "offline" and src.confidence == 0.9 and not src.is_series
    a, b = src.final.arms
    assert a.auc == {"clean": 0.6, "leaky:p": 0.7, "mllm": 0.65} and a.ctr == 0.25 and a.labelled == 8
    assert (a.ais.low, a.ais.high) == (0.0, 0.1) and a.efficiency == {"p": 0.5}
    assert b.lis["p"].value == pytest.approx(0.02) and b.lis["p"].low is None  # derived from the AUCs, no CI
    assert b.ais.value == pytest.approx(0.01)
    assert any("skipped" in n for n in src.notes) and any(k == "split at" for k, _ in src.info)
    (tmp_path / "nested.json").write_text(json.dumps({"split_at": 1, "experiments": [{"experiment": "x", "arms": [
        {"arm": "t", "auc": {"clean": 0.5, "leaky:q": 0.6}}]}]}))
    assert load_file(str(tmp_path / "nested.json")).final.arms[0].key == ("x", "t")


def test_unknown_or_missing_inputs_are_refused_with_a_reason(tmp_path):
    for text, why in (("", "empty"), ('{"a": 1}', "no known shape"), ("not json\n", "neither JSON"),
                      ('{"mode": "offline", "arms": []}', "no arms")):
        (tmp_path / "x").write_text(text)
        with pytest.raises(ReportError, match=why):
            load_file(str(tmp_path / "x"))
    with pytest.raises(ReportError, match="No such file"):
        load_file(str(tmp_path / "missing.json"))


def test_an_event_log_is_named_as_one_with_the_run_that_makes_a_report_of_it(tmp_path):
    imp = {"type": "impression", "impression_id": "i", "ts": 1, "user_id": "u", "item_id": "a", "experiment": "e", "arm": "c"}
    for n in (0, 1, 5_000):  # one record, a short log, and one past the lines read before giving up
        (tmp_path / "ev log.jsonl").write_text((json.dumps(imp) + "\n") * n + json.dumps({"type": "click"}) + "\n")
        with pytest.raises(ReportError, match="an event log .* --input '.*ev log.jsonl' --history history.jsonl"):
            load_file(str(tmp_path / "ev log.jsonl"))
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ReportError, match="a JSON list of no known shape"):
        load_file(str(tmp_path / "list.json"))


METRICS = """\
# TYPE stream_lis_lis gauge
stream_lis_lis{experiment="e",arm="a",probe="p"} 0.031
stream_lis_lis_ci_lower{experiment="e",arm="a",probe="p"} 0.021
stream_lis_lis_ci_upper{experiment="e",arm="a",probe="p"} 0.041
stream_lis_ais{experiment="e",arm="a"} 0.012
stream_lis_ais_ci_lower{experiment="e",arm="a"} -0.002
stream_lis_ais_ci_upper{experiment="e",arm="a"} 0.026
stream_lis_alignment_efficiency{experiment="e",arm="a",probe="p"} 0.387
stream_lis_auc{experiment="e",arm="a",learner="mllm",window="sliding"} 0.712
stream_lis_auc{experiment="e",arm="a",learner="clean",window="sliding"} 0.7
stream_lis_auc{experiment="e",arm="a",learner="clean",window="cumulative"} 0.69
# TYPE stream_lis_labelled_examples counter
stream_lis_labelled_examples_total{experiment="e",arm="a",label="positive"} 5.0
stream_lis_labelled_examples_total{experiment="e",arm="a",label="negative"} 95.0
# TYPE stream_lis_records counter
stream_lis_records_total 1234.0
stream_lis_watermark_timestamp_seconds 1.7e9
# TYPE stream_lis_label_delay_seconds histogram
stream_lis_label_delay_seconds_bucket{le="1.0"} 2.0
stream_lis_label_delay_seconds_bucket{le="5.0"} 5.0
stream_lis_label_delay_seconds_bucket{le="+Inf"} 9.0
stream_lis_label_delay_seconds_count 9.0
stream_lis_label_delay_seconds_sum 40.0
"""


def test_metrics_text_becomes_a_point():
    p = parse_metrics(METRICS, t_wall=5.0)
    [a] = p.arms
    assert (a.lis["p"].value, a.lis["p"].low, a.lis["p"].high) == (0.031, 0.021, 0.041)
    assert a.ais.value == 0.012 and a.efficiency == {"p": 0.387}
    assert list(a.auc) == ["clean", "mllm"] and a.auc_cumulative == {"clean": 0.69}
    assert a.labelled == 100 and a.ctr == pytest.approx(0.05)  # CTR from the labels when not exported
    assert p.records == 1234 and p.watermark_ms == 1.7e12
    assert p.label_delay.counts == [2, 3, 4] and p.label_delay.total_s == 40.0


def test_scrape_is_bounded_and_survives_failed_samples():
    calls, sleeps = [], []

    def fetch(url: str, timeout: float) -> str:
        calls.append(url)
        if len(calls) == 2:
            raise OSError("connection refused")
        return METRICS

    src = scrape_metrics("127.0.0.1:9464", 2.5, 3, log=None, sleep=sleeps.append, fetch=fetch)
    assert calls == ["http://127.0.0.1:9464/metrics"] * 3 and sleeps == [2.5, 2.5]
    assert len(src.points) == 2 and any("failed" in v for _, v in src.info)
    with pytest.raises(ReportError, match="http"):
        scrape_metrics("file:///etc/passwd", 0, 1, log=None, fetch=fetch)
