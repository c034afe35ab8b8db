"""With a checkpoint key, a checkpoint the workers did not write is refused before it is
unpickled (unpickling runs code); the workers' own signed checkpoints load. Real broker."""

from __future__ import annotations

import pickle
import zlib

import pytest
from kafka import KafkaProducer

from stream_lis.runtime.kafka.checkpoints import CheckpointStore, sign
from stream_lis.runtime.kafka.produce import make_producer

from kafka_harness import BOOTSTRAP, cli, namespace, require_broker

pytestmark = [pytest.mark.kafka]


class _Payload:
    """Pickles into a call that creates ``path``: what a forged checkpoint could run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_forged_checkpoint_is_refused_before_it_is_unpickled(tmp_path):
    require_broker()
    ov = namespace()
    assert cli("topics", "create", ov=ov).returncode == 0
    topic = ov["kafka.topics.checkpoints"]
    producer = make_producer({"bootstrap_servers": BOOTSTRAP})
    try:
        store = CheckpointStore(topic, producer, {"bootstrap_servers": BOOTSTRAP}, 1 << 20, key=b"the workers' key")
        store.save("eval:0", {"offset": 7})
        marker = tmp_path / "ran"
        forged = zlib.compress(pickle.dumps(_Payload(str(marker))))
        raw = KafkaProducer(bootstrap_servers=BOOTSTRAP)
        raw.send(topic, key=b"eval:1", value=forged)  # unsigned
        raw.send(topic, key=b"eval:2", value=sign(forged, b"another key"))  # signed with the wrong key
        raw.flush()
        raw.close()

        loaded = store.load_all("eval:")
        assert loaded == {"eval:0": {"offset": 7}}
        assert store.refused == 2 and not marker.exists()
        # the same topic read without a key: the workers' own signed checkpoint still loads
        # (unverified, with a warning) rather than resetting the state of every partition
        unkeyed = CheckpointStore(topic, producer, {"bootstrap_servers": BOOTSTRAP}, 1 << 20)
        assert unkeyed.load_all("eval:0") == {"eval:0": {"offset": 7}}
    finally:
        producer.close()
