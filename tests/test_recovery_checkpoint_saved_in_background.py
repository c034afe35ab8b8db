"""Checkpoints are compressed and sent on a thread of their own: the offsets a checkpoint
reflects are handed back for committing only once the broker has acknowledged it, never for a
failed save, and what is sent restores the state as it was when the snapshot was taken (not as
it is when the thread gets to it). The stages also leave most of the encoding to that thread:
the join stage freezes its labellers (shallow copies), the evaluation stage its arms (what
changes in place pickled at once, the held examples listed), and they go on changing."""

from __future__ import annotations

import pickle
import threading

import stream_lis.packing as packing
from _helpers import feed, sim_records
from stream_lis.arms import ArmSet
from stream_lis.config import load_config
from stream_lis.engine import Engine
from stream_lis.runtime.kafka.checkpoints import BackgroundSaver, CheckpointStore, snapshot, unpack


class _Ack:
    def __init__(self, gate: threading.Event, fail: bool) -> None:
        self.gate, self.fail = gate, fail

    def get(self, timeout: float) -> None:
        assert self.gate.wait(timeout), "the test never opened the gate"
        if self.fail:
            raise TimeoutError("broker did not acknowledge")


class GatedProducer:
    """Keeps what is sent; each acknowledgement waits for the test to open the gate."""

    def __init__(self, fail: bool = False) -> None:
        self.gate = threading.Event()
        self.fail = fail
        self.sent: list[tuple[str, str, bytes]] = []

    def send(self, topic: str, key: bytes, value: bytes) -> _Ack:
        self.sent.append((topic, key.decode(), value))
        return _Ack(self.gate, self.fail)


def test_offsets_are_handed_back_only_after_the_acknowledgement():
    producer = GatedProducer()
    sizes: list[int] = []
    saver = BackgroundSaver(CheckpointStore("ck", producer, {}, 1 << 20), on_saved=sizes.append)
    state = {"weights": list(range(1000))}
    saver.submit([("eval:0", snapshot(state))], {"labelled-0": 1234})
    state["weights"].clear()  # the stage goes on changing its state meanwhile
    assert saver.busy()
    assert saver.acknowledged() == {} and sizes == []
    producer.gate.set()
    saver.wait()
    assert not saver.busy()
    assert saver.acknowledged() == {"labelled-0": 1234}
    assert saver.acknowledged() == {}  # handed back once
    (topic, key, blob), = producer.sent
    assert (topic, key) == ("ck", "eval:0") and sizes == [len(blob)]
    assert unpack(blob) == {"weights": list(range(1000))}  # the state as it was at the snapshot


def test_a_failed_save_commits_nothing_and_the_next_one_goes_through():
    producer = GatedProducer(fail=True)
    sizes: list[int] = []
    saver = BackgroundSaver(CheckpointStore("ck", producer, {}, 1 << 20), on_saved=sizes.append)
    producer.gate.set()
    saver.submit([("eval:0", snapshot({"n": 1})), ("eval:1", snapshot({"n": 2}))], {"p0": 10, "p1": 20})
    saver.wait()
    assert saver.acknowledged() == {} and saver.failed == 1 and sizes == []
    producer.fail = False
    saver.submit([("eval:0", snapshot({"n": 3}))], {"p0": 30})
    saver.wait()
    assert saver.acknowledged() == {"p0": 30} and saver.failed == 1 and len(sizes) == 1
    assert unpack(producer.sent[-1][2]) == {"n": 3}


CFG = {"time.attribution_window": "5m", "time.horizon": "10m", "learner.hash_bits": 12, "learner.batch_size": 64}


def test_a_frozen_labeller_encodes_the_state_of_its_instant_while_the_stage_goes_on(monkeypatch):
    records = sim_records(6_000, seed=4, orphan_click_rate=0.05)
    eng = Engine(load_config(None, CFG))
    feed(eng, records[:3_000], 500)
    lab = eng.labeller
    assert len(lab.joiner.pending) > 50 and lab.joiner._early and lab.joiner._final
    expected = pickle.dumps(lab.state())
    frozen = lab.freeze()
    # the stage goes on: clicks attributed to pending impressions, labels final, new impressions
    attributed = lab.counters.clicks["attributed"]
    feed(eng, records[3_000:], 500)
    assert lab.counters.clicks["attributed"] > attributed and pickle.dumps(lab.state()) != expected
    assert pickle.dumps(frozen.state()) == expected
    # encoded a few items per call (the stage may take the interpreter lock in between): same bytes
    monkeypatch.setattr(packing, "CHUNK", 7)
    assert pickle.dumps(frozen.state()) == expected


def test_the_saver_encodes_a_deferred_snapshot_on_its_thread():
    producer = GatedProducer()
    saver = BackgroundSaver(CheckpointStore("ck", producer, {}, 1 << 20))
    threads = []

    def encode() -> bytes:
        threads.append(threading.current_thread().name)
        return snapshot({"n": 7})

    producer.gate.set()
    saver.submit([("join:0", encode)], {"p0": 5})
    saver.wait()
    assert threads == ["checkpoint-saver"] and saver.acknowledged() == {"p0": 5}
    assert unpack(producer.sent[-1][2]) == {"n": 7}


def test_a_frozen_arm_encodes_the_state_of_its_instant_while_the_stage_goes_on():
    cfg = load_config(None, CFG)
    records = sim_records(6_000, seed=4)
    eng = Engine(cfg)
    feed(eng, records[:3_000], 500)
    key = eng.armset.keys()[0]
    assert len(eng.armset.arms[key].horizon) > 50
    at_once = eng.armset.dump_arm(key)
    encode = eng.armset.freeze_arm(key)
    # the arm goes on: examples released and learnt from, the log grows, new ones held
    feed(eng, records[3_000:], 500)
    assert eng.armset.dump_arm(key) != at_once

    def restored(blob: bytes) -> tuple:
        arms = ArmSet(cfg)
        assert arms.load_arm(key, blob)
        a = arms.arms[key]
        return a.horizon.state(), pickle.dumps(a.log), pickle.dumps(a.evaluator), a.impressions, a.clicks

    assert restored(encode()) == restored(at_once)
