"""The arms' MLLM representations from a side table (``embeddings.path``) instead of inline in
the events: the same figures, exactly; an inline embedding wins; bad lines are reported."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from stream_lis.config import ConfigError, load_config
from stream_lis.embedding_table import EmbeddingTable, build_embeddings
from stream_lis.engine import Engine
from stream_lis.events import Impression
from stream_lis.join import LabelledExample
from stream_lis.simulator import Simulator, SimulatorConfig

CFG = {"time.attribution_window": "5m", "time.horizon": "10m", "evaluation.window_size": 1000}
IMPRESSIONS = 6_000


def _run(records: list[str], ov: dict):
    eng = Engine(load_config(None, ov))
    eng.process_records([r.encode() for r in records])
    eng.flush()
    return eng.snapshot()


def test_a_side_table_gives_exactly_the_figures_of_inline_embeddings(tmp_path):
    inline = [json.dumps(ev) for ev in Simulator(SimulatorConfig(impressions=IMPRESSIONS, seed=3)).events()]
    sim = Simulator(SimulatorConfig(impressions=IMPRESSIONS, seed=3, side_embeddings=True))
    bare = [json.dumps(ev) for ev in sim.events()]
    assert len(bare) == len(inline) and not any('"embedding"' in r for r in bare)
    table = tmp_path / "embeddings.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in sim.embedding_records()))

    want = _run(inline, CFG)
    got = _run(bare, {**CFG, "embeddings.path": str(table)})
    assert [a.arm for a in got.arms] == [a.arm for a in want.arms] == ["control", "treatment"]
    for g, w in zip(got.arms, want.arms):
        assert g.has_embeddings and g.ais is not None
        assert (g.ais, g.learners, g.lis) == (w.ais, w.learners, w.lis)
    # without the table the arms have no representation at all: no AIS
    assert all(a.ais is None and not a.has_embeddings for a in _run(bare, CFG).arms)


def _example(arm: str, item: str, embedding: list[float] | None = None) -> LabelledExample:
    imp = Impression(impression_id="i", ts=0, user_id="u", item_id=item, experiment="exp", arm=arm,
                     embedding=embedding)
    return LabelledExample(imp, 0, None, 0)


def test_inline_beats_the_table_and_an_experiments_record_beats_the_arm_wide_one():
    t = EmbeddingTable()
    t.update(b'{"arm": "a", "item_id": "x", "vector": [1.0]}')
    t.update(b'{"arm": "a", "item_id": "y", "vector": [2.0]}')
    t.update(b'{"experiment": "exp", "arm": "a", "item_id": "y", "vector": [3.0]}')
    t.update(b'{"experiment": "other", "arm": "a", "item_id": "x", "vector": [4.0]}')
    exs = [_example("a", "x"), _example("a", "y"), _example("a", "x", [9.0]), _example("b", "x")]
    got = [ex.impression.embedding for ex in t.fill(exs)]
    assert got == [[1.0], [3.0], [9.0], None]
    assert exs[0].impression.embedding is None  # the originals are left as they were


def test_a_topic_key_deletes_what_it_set_and_a_reused_key_drops_its_old_entry():
    t = EmbeddingTable()
    t.update(b'{"arm": "a", "item_id": "x", "vector": [1.0]}', key="k1")
    t.update(b'{"arm": "a", "item_id": "y", "vector": [2.0]}', key="k2")
    t.update(b'{"arm": "a", "item_id": "z", "vector": [3.0]}', key="k2")  # k2 now means (a, z)
    assert (t.get("e", "a", "y"), t.get("e", "a", "z"), len(t)) == (None, [3.0], 2)
    assert t.delete("k1") and not t.delete("k1") and t.get("e", "a", "x") is None


def test_bad_lines_are_named_and_the_rest_loaded(tmp_path, caplog):
    path = tmp_path / "emb.jsonl"
    path.write_text('{"arm": "a", "item_id": "x", "vector": [1.0]}\n{"arm": "a", "item_id": "y"}\n'
                    '{"arm": "a", "item_id": "z", "vector": [1, 2, 3]}\n[1]\n{oops\n')
    with caplog.at_level(logging.WARNING, logger="stream_lis.embeddings"):
        t = EmbeddingTable.from_file(str(path), max_dims=2)
    assert t.rejected == [(2, "missing_field"), (3, "oversized"), (4, "wrong_type"), (5, "unparseable")]
    assert len(t) == 1 and "line 3: oversized" in caplog.records[-1].getMessage()


def test_the_topic_alone_is_for_the_worker_only():
    cfg = load_config(None, {"embeddings.from_topic": True})
    assert len(build_embeddings(cfg, topic_fed=True)) == 0
    with pytest.raises(ConfigError, match="set embeddings.path"):
        build_embeddings(cfg)
    out = subprocess.run([sys.executable, "-m", "stream_lis", "run", "--impressions", "1000", "--port", "-1",
                          "--set", "embeddings.from_topic=true"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "only the Kafka worker reads the embeddings topic" in out.stderr


def test_simulate_writes_the_side_table_and_leaves_embeddings_out_of_the_events(tmp_path):
    events, table = tmp_path / "events.jsonl", tmp_path / "emb.jsonl"
    out = subprocess.run([sys.executable, "-m", "stream_lis", "simulate", "--impressions", "500", "-o", str(events),
                          "--embeddings", str(table)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    imps = [json.loads(line) for line in events.read_text().splitlines() if '"impression"' in line]
    recs = [json.loads(line) for line in table.read_text().splitlines()]
    assert imps and not any("embedding" in e for e in imps)
    served = {(e["arm"], e["item_id"]) for e in imps}
    assert served <= {(r["arm"], r["item_id"]) for r in recs}


def test_an_arm_the_table_does_not_name_is_reported_once(tmp_path, caplog):
    sim = Simulator(SimulatorConfig(impressions=4_000, seed=3, side_embeddings=True))
    bare = [json.dumps(ev) for ev in sim.events()]
    table = tmp_path / "embeddings.jsonl"  # the treatment arm's records under a misspelt name
    table.write_text("".join(json.dumps({**r, "arm": r["arm"].replace("treatment", "Treatment")}) + "\n"
                             for r in sim.embedding_records()))
    with caplog.at_level(logging.WARNING, logger="stream_lis.arms"):
        snap = _run(bare, {**CFG, "embeddings.path": str(table)})
    ais = {a.arm: a.ais for a in snap.arms}
    assert ais["control"] is not None and ais["treatment"] is None
    warned = [r.getMessage() for r in caplog.records if "has an embedding" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("lis_demo/treatment: none of its first")


def test_a_vector_holding_an_overflowing_number_is_rejected_as_non_finite():
    """JSON's only way to write infinity is a number too large for a double (1e999): the
    side tables reject it as ``non_finite``, the reason events get, not as a type error."""
    from stream_lis.probes.external import ExternalProbe

    t = EmbeddingTable([b'{"arm": "a", "item_id": "i", "vector": [1e999, 1.0]}',
                        b'{"arm": "a", "item_id": "j", "vector": [1.0, -1e999]}',
                        b'{"arm": "a", "item_id": "k", "vector": ["x"]}'])
    assert t.rejected == [(1, "non_finite"), (2, "non_finite"), (3, "wrong_type")] and len(t) == 0
    assert ExternalProbe.parse(b'{"item_id": "i", "vector": [1e999]}') == "non_finite"
    assert ExternalProbe.parse(b'{"item_id": "i", "vector": ["x"]}') == "wrong_type"


def test_a_vector_for_a_name_no_impression_can_carry_is_rejected():
    # `run` and the worker reject impressions whose experiment or arm holds a control or
    # invisible character: a vector for one could never be read, and the publisher should know.
    t = EmbeddingTable([b'{"arm": "a\\nb", "item_id": "i", "vector": [1.0]}',
                        b'{"arm": "a", "experiment": "e\\u2028f", "item_id": "i", "vector": [1.0]}',
                        b'{"arm": "a", "experiment": "e", "item_id": "i", "vector": [1.0]}'])
    assert t.rejected == [(1, "bad_name"), (2, "bad_name")] and len(t) == 1
