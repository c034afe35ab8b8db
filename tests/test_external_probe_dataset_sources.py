"""Where the external probe's dataset comes from: a file (bad lines reported, never silently
left out) or the preferences topic (the Kafka worker only: refused anywhere else)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from stream_lis.config import ConfigError, load_config
from stream_lis.probes import ExternalProbe, build_probes


def test_a_file_with_bad_lines_loads_the_rest_and_names_each_bad_line(tmp_path, caplog):
    path = tmp_path / "prefs.jsonl"
    path.write_text('{"item_id": "a", "vector": [1.0]}\n\nnot json\n{"item_id": "b", "vector": ["x"]}\n'
                    '{"item_id": "c", "items": ["a"]}\n{"item_id": "d"}\n')
    with caplog.at_level(logging.WARNING, logger="stream_lis.probes.external"):
        probe = ExternalProbe.from_file(str(path))
    assert probe.rejected == [(3, "unparseable"), (4, "wrong_type"), (6, "missing_field")]
    assert probe.n_items == 2 and {k: list(v) for k, v in probe.vectors.items()} == {"a": [1.0]}
    assert probe.similar == {"c": ["ext:sim=a"]}
    msg = caplog.records[-1].getMessage()
    assert "3 record(s) rejected" in msg and "line 4: wrong_type" in msg and "2 items loaded" in msg


def test_a_clean_file_logs_nothing(tmp_path, caplog):
    path = tmp_path / "prefs.jsonl"
    path.write_text('{"item_id": "a", "vector": [1.0]}\n')
    with caplog.at_level(logging.WARNING, logger="stream_lis.probes.external"):
        assert ExternalProbe.from_file(str(path)).rejected == []
    assert not caplog.records


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_a_file_without_a_record_is_said(tmp_path, caplog, text):
    """An empty dataset (a truncated export) would show only as a missing LIS: said at load."""
    path = tmp_path / "prefs.jsonl"
    path.write_text(text)
    with caplog.at_level(logging.WARNING, logger="stream_lis.probes.external"):
        probe = ExternalProbe.from_file(str(path))
    assert probe.n_items == 0 and probe.rejected == []
    assert "the file has no record" in caplog.records[-1].getMessage() and str(path) in caplog.records[-1].getMessage()


def test_deleting_an_item_removes_its_features():
    p = ExternalProbe()
    p.update(b'{"item_id": "a", "vector": [1.0], "items": ["b"]}')
    assert p.delete("a") and p.n_items == 0 and not p.delete("a")


def test_external_needs_a_file_or_the_topic():
    with pytest.raises(ConfigError, match="neither probes.external.path nor probes.external.from_topic"):
        load_config(None, {"probes.enabled": ["external"]})
    cfg = load_config(None, {"probes.enabled": ["external"], "probes.external.from_topic": True})
    # the worker's evaluation stage feeds it from the topic: it starts empty there
    (probe,) = build_probes(cfg.probes, topic_fed=True)
    assert isinstance(probe, ExternalProbe) and probe.n_items == 0
    # anywhere else the topic alone would leave it empty: refused, saying what to do
    with pytest.raises(ConfigError, match="set probes.external.path"):
        build_probes(cfg.probes)


def test_run_with_the_topic_alone_exits_with_the_reason():
    out = subprocess.run([sys.executable, "-m", "stream_lis", "run", "--impressions", "1000", "--port", "-1",
                          "--set", 'probes.enabled=["external"]', "--set", "probes.external.from_topic=true"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "only the Kafka worker reads the preferences topic" in out.stderr


def test_a_dataset_that_is_never_read_is_a_config_error(tmp_path):
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text('{"item_id": "a", "vector": [1.0]}\n')
    for key, value in (("probes.external.path", str(prefs)), ("probes.external.from_topic", True)):
        with pytest.raises(ConfigError, match="'external' is not in probes.enabled"):
            load_config(None, {key: value})


@pytest.mark.parametrize("key", ["probes.external.path", "embeddings.path"])
def test_a_missing_dataset_file_is_named_not_a_traceback(tmp_path, key):
    sets = ["--set", f"{key}={tmp_path / 'nope.jsonl'}"]
    if key.startswith("probes"):
        sets += ["--set", 'probes.enabled=["external"]']
    out = subprocess.run([sys.executable, "-m", "stream_lis", "run", "--impressions", "1000", "--port", "-1", *sets],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert f"{key}: cannot read {tmp_path / 'nope.jsonl'}: No such file or directory" in out.stderr
    assert "Traceback" not in out.stderr


def test_vectors_of_every_length_give_their_columns_padded_with_nan():
    """Vectors shorter than the longest, items without one and items added between releases:
    each example's row holds its item's vector and NaN after it (none: all NaN)."""
    import numpy as np

    from stream_lis.events import Impression
    from stream_lis.join import LabelledExample

    def release(items):
        return [LabelledExample(Impression(impression_id=f"i{k}", ts=k, user_id="u", item_id=item, experiment="e",
                                           arm="c"), 0, None, k) for k, item in enumerate(items)]

    p = ExternalProbe([b'{"item_id": "a", "vector": [1, 2]}', b'{"item_id": "b", "vector": [3, 4]}'])
    full = p.columns(release(["a", "x", "b"]), None, 0)
    assert full.names == ["ext:v0", "ext:v1"]
    np.testing.assert_array_equal(full.values, [[1, 2], [np.nan, np.nan], [3, 4]])
    p.update(b'{"item_id": "c", "vector": [5, 6, 7]}')
    mixed = p.columns(release(["c", "a", "x"]), None, 0)
    assert mixed.names == ["ext:v0", "ext:v1", "ext:v2"]
    np.testing.assert_array_equal(mixed.values, [[5, 6, 7], [1, 2, np.nan], [np.nan] * 3])
    mixed.values[0, 0] = 0.0  # a block's values are its own: the probe's table is not changed
    np.testing.assert_array_equal(p.columns(release(["c"]), None, 0).values, [[5, 6, 7]])
