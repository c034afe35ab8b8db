"""Malformed messages land in the dead-letter topic with their reason and origin; the valid
records around them are all counted."""

from __future__ import annotations

import json

import pytest
from kafka import KafkaConsumer, KafkaProducer

from stream_lis.simulator import Simulator, SimulatorConfig

from kafka_harness import BOOTSTRAP, WorkerProc, cli, namespace, require_broker, settled, total, wait_for

pytestmark = [pytest.mark.kafka]

BAD = [
    (b"{this is not json", "unparseable"),
    (b'{"type": "impression", "impression_id": 12, "ts": 1}', "wrong_type"),
    (b'{"type": "click", "ts": 5}', "missing_field"),
    (b'{"type": "impression", "impression_id": "big", "ts": 1767225600000, "user_id": "u", "item_id": "i", '
     b'"experiment": "lis_demo", "arm": "control", "features": {"pad": "' + b"x" * 70_000 + b'"}}', "oversized"),
    (b"\xff\xfe\x00garbage", "unparseable"),
]


def test_malformed_messages_are_dead_lettered_and_the_stream_goes_on(tmp_path):
    require_broker()
    ov = namespace()
    good = [json.dumps(e).encode() for e in Simulator(SimulatorConfig(impressions=3000, seed=2)).events()]
    lines = list(good)
    for k, (raw, _) in enumerate(BAD):
        lines.insert(200 + 400 * k, raw)
    # Over the producer's 1 MiB request limit: `replay` cannot send it, says which record it
    # was, and sends the rest.
    too_big = b'{"type": "click", "impression_id": "huge", "ts": 5, "pad": "' + b"x" * 2_000_000 + b'"}'
    lines.insert(1000, too_big)
    lines.insert(10, b"")  # blank lines are not records: the message names the file's line
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    n_imps = sum(1 for g in good if b'"type": "impression"' in g)

    assert cli("topics", "create", ov=ov).returncode == 0
    worker = WorkerProc(ov, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        # A null value (a tombstone) is no event: dead-lettered, saying so.
        prod = KafkaProducer(bootstrap_servers=BOOTSTRAP)
        prod.send(ov["kafka.topics.impressions"], key=b"gone", value=None)
        prod.flush()
        prod.close()
        rep = cli("replay", str(path), ov=ov)
        assert rep.returncode == 1, rep.stderr.decode()
        err = rep.stderr.decode()
        assert f"{path}:{lines.index(too_big) + 1} (" in err and "not sent" in err and "1 failed" in err, err
        assert f"{len(lines) - 2:,} acknowledged" in err, err

        wait_for(settled(worker, n_imps), 120, "every valid impression to be counted", worker.alive)
        m = worker.metrics()
        invalid: dict[str, float] = {}  # a sample per input partition: added up
        for s in m["stream_lis_invalid_events_total"]:
            invalid[s.labels["reason"]] = invalid.get(s.labels["reason"], 0) + s.value
        for _, reason in BAD:
            assert invalid.get(reason, 0) >= 1, (reason, invalid)
        # every valid impression is counted: accepted or, if it came too late, dead-lettered as such
        assert total(m, "stream_lis_impressions_total") + invalid.get("late_event", 0) == n_imps
        assert total(m, "stream_lis_labelled_examples_total") == total(m, "stream_lis_impressions_total")

        consumer = KafkaConsumer(ov["kafka.topics.dead_letters"], bootstrap_servers=BOOTSTRAP,
                                 auto_offset_reset="earliest", consumer_timeout_ms=5000)
        msgs = list(consumer)
        consumer.close()
        letters = [json.loads(msg.value) for msg in msgs]
        # keyed by input partition: letters spread over the topic as the input does
        assert all(msg.key.decode() == json.loads(msg.value)["source"].rsplit("@", 1)[0] for msg in msgs)
        assert len(letters) == sum(invalid.values())
        by_reason = {d["reason"] for d in letters}
        assert {r for _, r in BAD} <= by_reason
        for d in letters:
            topic, rest = d["source"].rsplit("/", 1)
            partition, offset = rest.split("@")
            assert topic in (ov["kafka.topics.impressions"], ov["kafka.topics.clicks"])
            assert int(partition) >= 0 and int(offset) >= 0
            assert d["detail"] and (d.get("raw") is not None or d.get("raw_base64") is not None)
        tomb = [d for d in letters if "tombstone" in d["detail"]]
        assert len(tomb) == 1 and tomb[0]["reason"] == "unparseable", tomb
        bad_json = next(d for d in letters if d["reason"] == "unparseable" and d.get("raw") == "{this is not json")
        assert bad_json["source"].startswith(ov["kafka.topics.impressions"])
    finally:
        worker.stop()
