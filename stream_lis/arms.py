"""Stage two of the core: each arm's behaviour log, look-ahead buffer, probes and learners.

Everything an arm's numbers depend on is the arm's own traffic (LIS.md: "for every
(experiment, arm), on the arm's own traffic"), so arms are independent: the Kafka runtime can
place each arm on exactly one worker, and its state moves as a unit. ``ArmSet`` holds the
arms of one place (all arms in the embedded runtime; one partition's arms in a worker) and
releases examples when its watermark passes their horizon.

>>> from stream_lis.config import Config
>>> arms = ArmSet(Config())
>>> arms.keys()
[]
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
from collections import Counter
from typing import Callable, Iterable, Sequence

import msgspec

from .config import Config
from .embedding_table import EmbeddingTable
from .evaluator import ArmEvaluator, ArmStats
from .horizon import LookAheadBuffer
from .labeller import ArmRecord, Clicked, Labelled, Seen
from .learners import make_learner
from .overload import WARNINGS
from .packing import Pickled, pack
from .probes import BehaviourLog, Probe, build_probes
from .probes import release as release_columns
from .watermark import NEG_INF

ArmKey = tuple[str, str]
log = logging.getLogger("stream_lis.arms")

#: Learner-value differences already logged in this process (``ArmSet._check_hyperparameters``).
_HYPER_REPORTED: set[str] = set()

#: Layout of a checkpointed arm (behaviour log, buffers, learners); bumped when it changes, so
#: a checkpoint from an older version starts its arm over (with a warning) instead of failing.
STATE_VERSION = 2

class _AnySource:
    """Stands for every ``probes.external`` in a fingerprint (see ``ArmSet.fingerprint``)."""

    def __repr__(self) -> str:
        return "ExternalProbeConfig(path=None)"


_ANY_EXTERNAL_SOURCE = _AnySource()

#: Released examples between two prunes of an arm's behaviour log, at least (see ``release``).
PRUNE_EVERY = 2_000


class ArmPipeline:
    """One (experiment, arm): behaviour log -> horizon -> probes -> evaluator."""

    def __init__(self, key: ArmKey, cfg: Config, probes: Sequence[Probe], embeddings: EmbeddingTable | None = None) -> None:
        self.key = key
        self.embeddings = embeddings
        #: Examples released without any representation, inline or from the table, until the
        #: first one with one (a table naming the arm differently leaves it without AIS).
        self._bare = 0
        self.cfg = cfg
        self.window_ms = cfg.time.attribution_window_ms
        self.horizon_ms = cfg.time.horizon_ms
        self.probes = probes
        self.log = BehaviourLog()
        self.horizon = LookAheadBuffer(max(self.window_ms, self.horizon_ms))
        self.evaluator = ArmEvaluator(key[0], key[1], cfg, [p.name for p in probes])
        self.impressions = 0
        self.clicks = 0
        self.last_seen = NEG_INF
        self._since_prune = 0
        #: Items dropped by a memory bound, by bound (``stream_lis_shed_total``).
        self.shed: Counter[str] = Counter()
        #: Resumed with learners built with other values than the config's (``ArmStats``).
        self.learner_values_outdated = False
        self.max_held = cfg.limits.max_held_examples
        self.max_log = cfg.limits.max_log_events

    def apply(self, rec: ArmRecord) -> None:
        kind = type(rec)
        if kind is Seen:
            imp = rec.impression
            self.impressions += 1
            if imp.ts > self.last_seen:
                self.last_seen = imp.ts
            self.log.add_impression(imp.item_id, imp.ts)
        elif kind is Clicked:
            imp = rec.impression
            self.log.add_click(imp.user_id, imp.item_id, rec.ts, imp.impression_id)
        else:
            ex = rec.example
            # Attributed clicks are counted from the labels: a click attributed after the
            # watermark passed it labels its impression but has no ``Clicked`` record (it is
            # kept out of the behaviour log).
            self.clicks += ex.label
            self.horizon.push(ex)
            if len(self.horizon) > self.max_held:
                # The watermark stalled or the horizon is too long for the traffic: drop the
                # example due first rather than grow without end.
                self.horizon.drop_oldest()
                self.shed["lookahead"] += 1
                WARNINGS.note("lookahead", 1, f"{self.key[0]}/{self.key[1]}: limits.max_held_examples={self.max_held}")

    def release(self, watermark: int, end_ms: int | None = None) -> int:
        """Evaluate every held example whose horizon the watermark passed.

        ``end_ms``: a finite input ended at this event time; examples whose window reaches past
        it are learnt from but kept out of the AUCs (their future was truncated).
        """
        ready = self.horizon.pop_ready(watermark)
        if not ready:
            return 0
        with release_columns.shared(ready):  # the probes read the release's columns once
            leaked = {p.name: p.block(ready, self.log, self.horizon_ms) for p in self.probes}
        hold = self.horizon.hold_ms
        complete = None if end_ms is None else [ex.impression.ts + hold <= end_ms for ex in ready]
        if self.embeddings is not None:
            ready = self.embeddings.fill(ready)
            if self._bare >= 0:
                self._check_embeddings(ready)
        self.evaluator.add_many(ready, leaked, complete)
        self._since_prune += len(ready)
        # A prune is a pass over the log: every PRUNE_EVERY examples, or an eighth of the log
        # when that is more (a dense stream's window holds millions of events; pruning it every
        # 2,000 examples cost more per example than the probes). Before shedding, always: what
        # a prune drops is not load.
        if (self._since_prune >= PRUNE_EVERY and self._since_prune >= self.log.size >> 3) or self.log.size > self.max_log:
            oldest = self.horizon.oldest_ts()
            floor = watermark - self.window_ms if oldest is None else min(oldest, watermark - self.window_ms)
            self.log.prune(floor)
            self._since_prune = 0
        if self.log.size > self.max_log:
            dropped = self.log.shed_oldest(int(self.max_log * 0.9))
            self.shed["behaviour_log"] += dropped
            WARNINGS.note("behaviour_log", dropped, f"{self.key[0]}/{self.key[1]}: limits.max_log_events={self.max_log}")
        return len(ready)

    def _check_embeddings(self, ready: Sequence) -> None:
        """Say once when an arm's examples find no vector in the table: a typo in the table's
        arm names would otherwise only show as a missing AIS."""
        if any(ex.impression.embedding for ex in ready):
            self._bare = -1  # found: no more checks
            return
        before, self._bare = self._bare, self._bare + len(ready)
        if before < 1000 <= self._bare:
            log.warning("%s/%s: none of its first %d examples has an embedding, inline or in the embeddings table "
                        "(records with arm %r and experiment %r or none): no AIS for this arm",
                        self.key[0], self.key[1], self._bare, self.key[1], self.key[0])

    def stats(self) -> ArmStats:
        # A copy: the evaluator caches its stats, and snapshots handed out must not change.
        return dataclasses.replace(self.evaluator.stats(), impressions=self.impressions, clicks=self.clicks,
                                   learner_values_outdated=self.learner_values_outdated)

    @property
    def held(self) -> int:
        return len(self.horizon) + self.evaluator.buffered


class ArmSet:
    """The arms evaluated in one place, with their shared event clock."""

    def __init__(self, cfg: Config, probe_factory: Callable[[], Sequence[Probe]] | None = None,
                 embeddings: EmbeddingTable | None = None) -> None:
        """``embeddings``: the arms' representations for impressions without an inline one
        (like the probes, one table serves every arm)."""
        self.cfg = cfg
        self.embeddings = embeddings
        self.probe_factory = probe_factory or (lambda: build_probes(cfg.probes))
        self._probes: Sequence[Probe] | None = None
        self.arms: dict[ArmKey, ArmPipeline] = {}
        self.ended: dict[ArmKey, ArmStats] = {}
        self.experiments_ended = 0
        #: What arms that ended had shed (their pipelines are gone; the counter must not drop).
        self.shed_ended: Counter[str] = Counter()
        #: What this config's learners are built with (``_check_hyperparameters``), once asked.
        self._built_now: dict | None = None

    @property
    def probes(self) -> Sequence[Probe]:
        # Probes hold no per-arm state, so one set serves every arm.
        if self._probes is None:
            self._probes = self.probe_factory()
        return self._probes

    def keys(self) -> list[ArmKey]:
        return sorted(self.arms)

    def arm(self, key: ArmKey) -> ArmPipeline:
        a = self.arms.get(key)
        if a is None:
            a = self.arms[key] = ArmPipeline(key, self.cfg, self.probes, self.embeddings)
            self.ended.pop(key, None)
        return a

    def apply(self, records: Iterable[ArmRecord]) -> None:
        arms = self.arms
        # A run of records of one arm (a Kafka evaluation partition often holds a single arm)
        # reuses its lookup.
        exp = arm = a = None
        for rec in records:
            imp = rec.example.impression if type(rec) is Labelled else rec.impression
            if a is None or imp.arm != arm or imp.experiment != exp:
                exp, arm = imp.experiment, imp.arm
                a = arms.get((exp, arm))
                if a is None:
                    a = self.arm((exp, arm))
            a.apply(rec)

    def release(self, watermark: int, end_ms: int | None = None) -> int:
        n = sum(a.release(watermark, end_ms) for a in self.arms.values())
        self._end_idle(watermark)
        return n

    def flush_partial(self) -> None:
        for a in self.arms.values():
            a.evaluator.flush()

    def _end_idle(self, watermark: int) -> None:
        timeout = self.cfg.time.experiment_idle_timeout_ms
        if watermark >= (1 << 61):
            return
        last: dict[str, int] = {}
        for (exp, _), a in self.arms.items():
            last[exp] = max(last.get(exp, NEG_INF), a.last_seen)
        for exp, ts in last.items():
            # Examples still waiting for their horizon hold an experiment open; a partial chunk
            # does not (ending the experiment evaluates it): a replay never flushes one
            # otherwise, and the experiment would hold its arms (and ``limits.max_arms``)
            # forever.
            if watermark - ts > timeout and not any(len(a.horizon) for k, a in self.arms.items() if k[0] == exp):
                self.end_experiment(exp)

    def end_experiment(self, experiment: str) -> list[ArmStats]:
        """Evaluate what is buffered, keep the final figures, drop the arms and their series."""
        final = []
        for key in [k for k in self.arms if k[0] == experiment]:
            a = self.arms.pop(key)
            self.shed_ended.update(a.shed)
            a.evaluator.flush()
            st = a.stats()
            self.ended[key] = st
            final.append(st)
        if final:
            self.experiments_ended += 1
        while len(self.ended) > 256:
            self.ended.pop(next(iter(self.ended)))
        return final

    def stats(self) -> list[ArmStats]:
        return [self.arms[k].stats() for k in self.keys()]

    @property
    def held(self) -> int:
        return sum(a.held for a in self.arms.values())

    def shed(self) -> Counter[str]:
        """Items dropped by memory bounds since start, by bound."""
        out = Counter(self.shed_ended)
        for a in self.arms.values():
            out.update(a.shed)
        return out

    @property
    def chunks(self) -> int:
        return sum(a.evaluator.chunks for a in self.arms.values())

    def fingerprint(self) -> str:
        """What a checkpointed arm must agree with to be resumed: the state layout, probes,
        time, learner, windows.

        Not where the external dataset comes from (a file, the topic): the dataset may change
        under a running arm anyway (topic updates), and its learners go on with it. That part
        is written as it was before the source had options, so checkpoints of configs
        without a dataset path resume across that change.
        """
        c = self.cfg
        probes = msgspec.structs.replace(c.probes, external=_ANY_EXTERNAL_SOURCE)
        return repr((STATE_VERSION, [p.name for p in self.probes], c.time, c.learner, c.evaluation, probes))

    # Checkpoints: an arm is learners + windows + log + buffer, all picklable plain objects.
    def freeze_arm(self, key: ArmKey) -> Callable[[], bytes]:
        """The arm's checkpoint at this instant, as a function that encodes it later (on the
        saver's thread, while the stage goes on).

        Here, while the stage holds still, go what changes in place: the behaviour log and
        the evaluator (learners, windows), pickled now (``Pickled``). The held examples never
        change: a list of them now, encoded later (two thirds of an arm's checkpoint time).
        """
        a = self.arms[key]
        now = pickle.HIGHEST_PROTOCOL
        # "horizon" (a list in older checkpoints) stays, empty, for a previous release to read:
        # it resumes the arm without the held examples rather than failing on the blob.
        state = {"log": Pickled(pickle.dumps(a.log, protocol=now)), "horizon": [], "held": a.horizon.frozen(),
                 "evaluator": Pickled(pickle.dumps(a.evaluator, protocol=now)),
                 "impressions": a.impressions, "clicks": a.clicks, "last_seen": a.last_seen,
                 "shed": dict(a.shed), "fingerprint": self.fingerprint()}

        def encode() -> bytes:
            return pickle.dumps({**state, "held": pack(state["held"])}, protocol=now)

        return encode

    def dump_arm(self, key: ArmKey) -> bytes:
        return self.freeze_arm(key)()

    def load_arm(self, key: ArmKey, blob: bytes) -> bool:
        """Resume an arm; ``False`` (and a fresh arm) when the config changed since the
        checkpoint: learners built for other probes or windows cannot continue."""
        s = pickle.loads(blob)
        if s.get("fingerprint") != self.fingerprint():
            log.warning("arm %s/%s: the evaluation config or the state format changed since its checkpoint; "
                        "its learners and windows start over (counts too)", *key)
            self.arm(key)
            return False
        a = ArmPipeline(key, self.cfg, self.probes, self.embeddings)
        a.log, a.evaluator = s["log"], s["evaluator"]
        a.horizon.load(s["held"] if "held" in s else s["horizon"])
        a.impressions, a.clicks, a.last_seen = s["impressions"], s["clicks"], s["last_seen"]
        a.shed.update(s.get("shed", {}))
        self.arms[key] = a
        a.learner_values_outdated = self._check_hyperparameters(key, a.evaluator)
        return True

    def _check_hyperparameters(self, key: ArmKey, evaluator: ArmEvaluator) -> bool:
        """Whether a resumed arm's learners were built with other values than this config
        builds now (the fingerprint holds ``learner.params`` as written, so a release with new
        defaults resumes an arm on the old ones), and say so: once per process for each
        difference (a Kafka worker has an ``ArmSet`` per partition), naming the first arm."""
        built = next(iter(evaluator.learners.values()), None)
        if built is None:
            return False
        if self._built_now is None:  # one fresh learner per ArmSet, not per resumed arm
            self._built_now = make_learner(self.cfg.learner).hyperparameters()
        try:
            then = built.hyperparameters()
        except AttributeError as exc:  # a learner pickled before one of its arguments existed
            log.debug("arm %s/%s: learner values not comparable (%s)", *key, exc)
            return False
        differ = sorted((k, then.get(k), v) for k, v in self._built_now.items() if then.get(k) != v)
        said = ", ".join(f"{k} {a!r} -> {b!r}" for k, a, b in differ)
        if differ and said not in _HYPER_REPORTED:
            _HYPER_REPORTED.add(said)
            log.warning("arm %s/%s (and any other resumed arm like it: stream_lis_learner_values_outdated names "
                        "each) resumed with the learner values it was built with, not this config's: %s "
                        "(checkpoint -> now). They stay until the arm restarts; any change of learner.params "
                        "restarts it (learners, windows, counts)", *key, said)
        return bool(differ)
