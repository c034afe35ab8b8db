"""The worker reads its side tables from compacted topics: the external probe's preference
dataset and the arms' embeddings. Each whole table before its first evaluation (so the
figures are the embedded runtime's with the same data as files or inline), then live updates
and deletions; a bad record is dead-lettered with its reason."""

from __future__ import annotations

import json

import pytest
from kafka import KafkaConsumer, KafkaProducer

from stream_lis.config import load_config
from stream_lis.embedding_table import REJECT_DETAILS as EMBEDDING_REJECTS
from stream_lis.probes.external import REJECT_DETAILS as PREFERENCE_REJECTS
from stream_lis.engine import Engine
from stream_lis.simulator import Simulator, SimulatorConfig

from kafka_harness import BOOTSTRAP, WorkerProc, cli, namespace, require_broker, total, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

IMPRESSIONS = 12_000
LIS_TOL = 0.01  # as in test_kafka_produce_matches_embedded: same examples, a few borderline-late ones aside


def _exported(m: dict, table: str = "preferences") -> dict[str, float]:
    return {s.labels["outcome"]: s.value for s in m.get("stream_lis_table_records_total", [])
            if s.labels["table"] == table}


def _outcomes(m: dict, table: str = "preferences") -> dict[str, float]:
    """The table's outcomes, the rejection reasons that never happened left out."""
    applied = ("upserted", "deleted", "absent")
    return {k: v for k, v in _exported(m, table).items() if v or k in applied}


def _entries(m: dict, table: str) -> float:
    return next(s.value for s in m["stream_lis_table_entries"] if s.labels["table"] == table)


def test_side_topics_give_the_file_and_inline_figures_then_take_updates(tmp_path):
    require_broker()
    # The worker's events carry no embedding: its arms read them from the embeddings topic.
    # The reference runs on the same world with the embeddings inline.
    inline = tmp_path / "inline.jsonl"
    inline.write_text("".join(json.dumps(ev) + "\n" for ev in Simulator(SimulatorConfig(impressions=IMPRESSIONS, seed=11)).events()))
    sim = Simulator(SimulatorConfig(impressions=IMPRESSIONS, seed=11, side_embeddings=True))
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(ev) + "\n" for ev in sim.events()))
    vectors = tmp_path / "embeddings.jsonl"
    vectors.write_text("".join(json.dumps(r) + "\n" for r in sim.embedding_records()) + '{"arm": "control"}\n')
    n_vectors = len(vectors.read_text().splitlines()) - 1
    dataset = [json.dumps(r) for r in sim.preferences()]
    deleted = json.loads(dataset[0])["item_id"]
    prefs = tmp_path / "prefs.jsonl"
    # The dataset, an item sent twice (compaction and the feed keep the last) and a bad line.
    stale = json.dumps({"item_id": json.loads(dataset[1])["item_id"], "vector": [9.0]})
    prefs.write_text("\n".join([stale, *dataset, '{"item_id": "x"}']) + "\n")
    # What the worker should end up with: the last record of each item, minus the deleted one.
    reference = tmp_path / "reference.jsonl"
    reference.write_text("\n".join(dataset[1:]) + "\n")

    ov = namespace({"probes.enabled": ["future_item", "external"], "probes.external.from_topic": True,
                    "embeddings.from_topic": True})
    assert cli("topics", "create", ov=ov).returncode == 0
    pub = cli("embeddings", str(vectors), ov=ov)
    assert pub.returncode == 1 and f"embeddings.jsonl:{n_vectors + 1}: missing_field".encode() in pub.stderr
    assert f"{n_vectors:,} acknowledged".encode() in pub.stderr
    pub = cli("preferences", str(prefs), "--delete", deleted, ov=ov)
    # the bad line is reported and not sent (exit 1); everything else is acknowledged
    assert pub.returncode == 1, pub.stderr.decode()
    assert f"prefs.jsonl:{len(dataset) + 2}: missing_field".encode() in pub.stderr
    assert f"{len(dataset) + 2:,} acknowledged".encode() in pub.stderr
    # A keyed record the probe rejects, from some other producer: the worker dead-letters it.
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    producer.send(ov["kafka.topics.preferences"], key=b"item-bad", value=b'{"item_id": "item-bad", "vector": ["high"]}')
    producer.flush()

    worker = WorkerProc(ov, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        # Ready means the topic was read to its end: every record is applied before any evaluation.
        m = worker.metrics()
        assert _outcomes(m) == {"upserted": len(dataset) + 1, "deleted": 1, "absent": 0, "wrong_type": 1}
        # Every rejection reason is exported, from 0: a series born at its first count already
        # holds it, and increase() (alert SideTableRecordsRejected) would miss that first burst.
        assert set(_exported(m)) == {"upserted", "deleted", "absent", *PREFERENCE_REJECTS}
        assert set(_exported(m, "embeddings")) == {"upserted", "deleted", "absent", *EMBEDDING_REJECTS}
        assert _entries(m, "preferences") == len(dataset) - 1
        assert _outcomes(m, "embeddings") == {"upserted": n_vectors, "deleted": 0, "absent": 0}
        assert _entries(m, "embeddings") == n_vectors

        rep = cli("replay", str(events), ov=ov, timeout=300)
        assert rep.returncode == 0, rep.stderr.decode()
        ref_ov = {**ov, "probes.external.from_topic": False, "probes.external.path": str(reference),
                  "embeddings.from_topic": False}
        eng = Engine(load_config(None, ref_ov))
        eng.process_records(inline.read_bytes().splitlines())
        eng.flush()  # the replay's end cuts the last windows, for the worker as for a file
        ref = eng.snapshot()
        expected = sum(a.labelled for a in ref.arms)

        def done() -> bool:
            m = worker.metrics()
            return total(m, "stream_lis_held_examples") == 0 and total(m, "stream_lis_pending_impressions") == 0 \
                and total(m, "stream_lis_labelled_examples_total") >= expected * 0.995

        wait_for(done, 180, "the worker to label and evaluate every impression", worker.alive)
        m = worker.metrics()
        for a in ref.arms:
            lis = {s.labels["probe"]: s.value for s in m["stream_lis_lis"] if s.labels["arm"] == a.arm}
            assert a.lis["external"].low > 0  # the planted truth leaks: a real signal to compare
            for probe in ("external", "future_item"):
                assert lis[probe] == pytest.approx(a.lis[probe].value, abs=LIS_TOL), (a.arm, probe)
            ais = [s.value for s in m["stream_lis_ais"] if s.labels["arm"] == a.arm]
            assert ais and ais[0] == pytest.approx(a.ais.value, abs=LIS_TOL), a.arm

        consumer = KafkaConsumer(ov["kafka.topics.dead_letters"], bootstrap_servers=BOOTSTRAP,
                                 auto_offset_reset="earliest", consumer_timeout_ms=5000)
        letters = [json.loads(msg.value) for msg in consumer]
        consumer.close()
        bad = [d for d in letters if d["source"].startswith(ov["kafka.topics.preferences"] + "/")]
        assert [(d["reason"], d["raw"]) for d in bad] == [("wrong_type", '{"item_id": "item-bad", "vector": ["high"]}')]

        # Live: an update and a deletion arrive while the worker runs.
        assert cli("preferences", "--delete", json.loads(dataset[1])["item_id"], ov=ov).returncode == 0
        new = tmp_path / "new.jsonl"
        new.write_text(json.dumps({"item_id": "item-new", "items": ["item1", "item2"]}) + "\n")
        assert cli("preferences", str(new), ov=ov).returncode == 0
        wait_for(lambda: _outcomes(worker.metrics()).get("deleted") == 2, 30, "the live deletion", worker.alive)
        wait_for(lambda: _outcomes(worker.metrics()).get("upserted") == len(dataset) + 2, 30, "the live update",
                 worker.alive)
        assert _entries(worker.metrics(), "preferences") == len(dataset) - 1
        # an arm's vector deleted by its key (a tombstone), live; a tombstone for a key the
        # table does not hold deletes nothing and says so
        assert cli("embeddings", "--delete", "control", "item1", "--delete", "control", "no-such-item",
                   ov=ov).returncode == 0
        wait_for(lambda: _outcomes(worker.metrics(), "embeddings") == {"upserted": n_vectors, "deleted": 1, "absent": 1},
                 30, "the embedding deletions", worker.alive)
        assert _entries(worker.metrics(), "embeddings") == n_vectors - 1

        # The table still lacks what the rejected record stood for, until its key gets a good
        # record: the gauge the alert reads says so (a restart reading the topic again counts
        # the rejected record again, but it is still one key).
        assert _rejected_keys(worker.metrics()) == {"preferences": 1, "embeddings": 0}
        producer.send(ov["kafka.topics.preferences"], key=b"item-bad", value=b'{"item_id": "item-bad", "vector": [1.0]}')
        producer.flush()
        wait_for(lambda: _rejected_keys(worker.metrics())["preferences"] == 0, 30, "the bad key fixed", worker.alive)
    finally:
        producer.close()
        worker.stop()


def _rejected_keys(m: dict) -> dict[str, float]:
    return {s.labels["table"]: s.value for s in m["stream_lis_table_rejected_keys"]}
