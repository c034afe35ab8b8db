"""How long a checkpoint holds the stages still, against the state it saves.

A Kafka worker takes a checkpoint every ``kafka.checkpoint_interval`` under the stage's lock:
the join stage freezes each partition's labeller (pending impressions, early clicks, final
labels: shallow copies), the evaluation stage each arm (behaviour log and learners pickled,
held examples listed) and its dedupe table (copied); the saver's thread encodes the rest
afterwards. Everything else waits
meanwhile, so this pause (``pause ms``) is what a checkpoint costs in lag and freshness, and it
grows with the state: up to ``limits.max_pending_impressions`` and ``limits.max_held_examples``.
``save ms`` is the encoding on the saver's thread.

The simulator's stream (at ``--rate`` impressions per second of event time, so that
windows hold many events) goes through the embedded engine in this process, without a final
flush, and then for each part it prints the state's size, the time to take and to restore
the checkpoint, and, as the baseline measured in the same run, the same state pickled in the
previous layout (pending impressions, final labels and held examples pickled one struct at a
time), with the ratio of its encoding time to the whole of the current one (pause + save:
an arm's learners and behaviour log are pickled during the pause). Restores are checked: the
state read back equals the state saved.

With ``--bootstrap`` each checkpoint also goes through a Kafka broker as a worker saves it:
compressed, sent (in parts of ``kafka.max_checkpoint_bytes`` when it is larger) and
acknowledged, then read back and checked (``send s``, ``parts``, ``load s``). The join stage
used to do all of that while it held still.

Usage: python benchmarks/bench_checkpoint.py [--impressions 300000] [--rate 100] [--rounds 3]
                                             [--bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import time
from typing import Any, Callable

from common import machine_pace, revision  # noqa: E402  (also puts this checkout first on the import path)


def best_of(rounds: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """The fastest of ``rounds`` calls (seconds) and the last result."""
    best, out = float("inf"), None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impressions", type=int, default=300_000)
    ap.add_argument("--rate", type=float, default=100.0, help="impressions per second of event time (default 100)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3, help="timings per figure; the fastest counts (default 3)")
    ap.add_argument("--bootstrap", default=None,
                    help="a Kafka broker: also save each checkpoint to it and read it back (topics of their own)")
    args = ap.parse_args()

    from stream_lis.config import load_config
    from stream_lis.engine import Engine
    from stream_lis.runtime.sources import simulator_records
    from stream_lis.simulator import SimulatorConfig

    cfg = load_config(None, {})
    eng = Engine(cfg)
    t0 = time.perf_counter()
    chunk: list[bytes] = []
    for rec in simulator_records(SimulatorConfig(impressions=args.impressions, seed=args.seed,
                                                 impressions_per_s=args.rate)):
        chunk.append(rec)
        if len(chunk) == 5000:
            eng.process_records(chunk)
            chunk = []
    eng.process_records(chunk)
    print(f"{args.impressions:,} impressions at {args.rate:g}/s of event time through the engine in "
          f"{time.perf_counter() - t0:.1f} s; {revision()}; {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"machine: {machine_pace()}")
    print(f"{'state':<28}{'size':>22}{'pause ms':>9}{'save ms':>9}{'restore ms':>11}{'MB':>7}"
          f"{'previous layout ms':>20}{'MB':>7}{'old/(pause+save)':>18}")

    broker = Broker(args.bootstrap, cfg) if args.bootstrap else None
    sent: list[str] = []

    def row(name: str, size: str, pause: float, save: float, restore: float, blob: bytes, old: float,
            old_blob: bytes) -> None:
        print(f"{name:<28}{size:>22}{pause * 1e3:>9.1f}{save * 1e3:>9.1f}{restore * 1e3:>11.1f}{len(blob) / 1e6:>7.1f}"
              f"{old * 1e3:>20.1f}{len(old_blob) / 1e6:>7.1f}{old / (pause + save):>17.1f}x", flush=True)
        if broker is not None:
            key = ("join:" if name.startswith("join") else "eval:") + str(len(sent))
            sent.append(broker.round_trip(key, blob, pickle.loads))

    # The join stage: one labeller (a partition's).
    lab, joiner = eng.labeller, eng.labeller.joiner

    def previous_labeller() -> bytes:
        st = lab.state()
        del st["joiner"]["held"], st["joiner"]["finals"]
        st["joiner"].update(pending=list(joiner.pending.values()), early=joiner._early,
                            final=list(joiner._final_order), final_labels=joiner._final)
        return pickle.dumps(st, protocol=pickle.HIGHEST_PROTOCOL)

    # The stage holds still while it freezes its labeller; the saver's thread encodes it.
    pause, frozen = best_of(args.rounds, lab.freeze)
    save, blob = best_of(args.rounds, lambda: pickle.dumps(frozen.state(), protocol=pickle.HIGHEST_PROTOCOL))
    restore, back = best_of(args.rounds, lambda: pickle.loads(blob))
    copy = type(lab)(cfg.time.attribution_window_ms, cfg.time.allowed_lateness_ms)
    copy.load(back)
    assert (copy.joiner.pending, copy.joiner._early, copy.joiner._final, copy.joiner._final_order) == \
        (joiner.pending, joiner._early, joiner._final, joiner._final_order), "restored join state differs"
    old, old_blob = best_of(args.rounds, previous_labeller)
    row("join: labeller", f"{len(joiner.pending):,} pending", pause, save, restore, blob, old, old_blob)

    # The evaluation stage: each arm.
    arms = eng.armset
    for key in arms.keys():
        a = arms.arms[key]

        def previous_arm() -> bytes:
            return pickle.dumps({"log": a.log, "horizon": [e for _, _, e in a.horizon._run] + [e for _, _, e in a.horizon._heap],
                                 "evaluator": a.evaluator, "impressions": a.impressions, "clicks": a.clicks,
                                 "last_seen": a.last_seen, "shed": dict(a.shed), "fingerprint": arms.fingerprint()},
                                protocol=pickle.HIGHEST_PROTOCOL)

        # The stage holds still while it freezes the arm; the saver's thread encodes it.
        pause, encode = best_of(args.rounds, lambda: arms.freeze_arm(key))
        save, blob = best_of(args.rounds, encode)
        restore, _ = best_of(args.rounds, lambda: arms.load_arm(key, blob))
        assert arms.arms[key].horizon.state() == a.horizon.state(), "restored look-ahead buffer differs"
        old, old_blob = best_of(args.rounds, previous_arm)
        arms.arms[key] = a
        row(f"eval: arm {key[0]}/{key[1]}", f"{len(a.horizon):,} held", pause, save, restore, blob, old, old_blob)
    # The evaluation stage's dedupe table (Kafka only): it remembers at least every impression
    # still pending or held, so it is filled with those. It used to be pickled while the stage
    # held still; now it is copied then, and pickled on the saver's thread.
    from stream_lis.runtime.kafka.eval_stage import LABELLED, SEEN, Dedupe

    dedupe = Dedupe(cfg.time.horizon_ms)
    imps = [p.impression for p in joiner.pending.values()] + \
        [e.impression for a in arms.arms.values() for e in a.horizon.frozen()]
    for imp in sorted(imps, key=lambda i: i.ts):
        dedupe.first(SEEN, imp.impression_id, imp.ts)
        dedupe.first(LABELLED, imp.impression_id, imp.ts)
    pause, frozen_table = best_of(args.rounds, dedupe.frozen)
    save, blob = best_of(args.rounds, lambda: pickle.dumps(frozen_table, protocol=pickle.HIGHEST_PROTOCOL))
    restore, back = best_of(args.rounds, lambda: pickle.loads(blob))
    assert (back.seen, back.order) == (dedupe.seen, dedupe.order), "restored dedupe table differs"
    print(f"eval: dedupe table ({len(dedupe.seen):,} impressions): pause {pause * 1e3:.1f} ms (copied), "
          f"save {save * 1e3:.1f} ms, restore {restore * 1e3:.1f} ms, {len(blob) / 1e6:.1f} MB; "
          f"the previous release pickled it while the stage held still: a pause of about the save time "
          f"({save / pause:.0f}x this pause)")
    if broker is not None:
        print(f"through the broker (kafka.max_checkpoint_bytes {cfg.kafka.max_checkpoint_bytes / 2**20:.0f} MiB):")
        print(f"{'state':<28}{'compressed MB':>14}{'parts':>6}{'send s':>8}{'load s':>8}")
        for line in sent:
            print(line)
        broker.close()
    extra = f" --bootstrap {args.bootstrap}" if args.bootstrap else ""
    print(f"reproduce: python benchmarks/bench_checkpoint.py --impressions {args.impressions} --rate {args.rate:g} "
          f"--seed {args.seed} --rounds {args.rounds}{extra}")


class Broker:
    """A checkpoint store on a broker, as a worker has one, on topics of its own."""

    def __init__(self, bootstrap: str, cfg: Any) -> None:
        import uuid

        import msgspec

        from stream_lis.runtime.kafka.checkpoints import CheckpointStore
        from stream_lis.runtime.kafka.produce import make_producer
        from stream_lis.runtime.kafka.topics import create_topics

        name = f"bench-ck-{uuid.uuid4().hex[:6]}"
        k = msgspec.structs.replace(cfg.kafka, bootstrap_servers=bootstrap,
                                    topics=msgspec.structs.replace(cfg.kafka.topics, checkpoints=name))
        self.cfg = msgspec.structs.replace(cfg, kafka=k)
        self.client_kw = {"bootstrap_servers": bootstrap}
        create_topics(self.cfg, self.client_kw)
        self.producer = make_producer(self.client_kw, max_request_size=k.max_checkpoint_bytes,
                                      batch_size=min(k.producer_batch_bytes, k.max_checkpoint_bytes))
        self.store = CheckpointStore(name, self.producer, self.client_kw, k.max_checkpoint_bytes)

    def round_trip(self, key: str, raw: bytes, decode: Callable[[bytes], Any]) -> str:
        """Save ``raw`` as a worker does, read it back (checked); the row of figures."""
        t0 = time.perf_counter()
        size = self.store.save_snapshot(key, raw)
        send = time.perf_counter() - t0
        t0 = time.perf_counter()
        back = self.store.load_all(key.split(":")[0] + ":", [key])
        load = time.perf_counter() - t0
        # both unpickled from the same bytes (one of them through the broker) pickle alike
        again = lambda obj: pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)  # noqa: E731
        assert again(back[key]) == again(decode(raw)), f"{key}: read back differs"
        parts = -(-size // self.store.part_bytes) if size > self.store.part_bytes else 1
        return f"{key:<28}{size / 1e6:>14.1f}{parts:>6}{send:>8.1f}{load:>8.1f}"

    def close(self) -> None:
        self.producer.close()


if __name__ == "__main__":
    main()
