"""Prequential evaluation of one arm: its learners, their paired scores, and the numbers.

Every labelled example of an arm goes through all of the arm's learners in the same order:
each chunk of ``batch_size`` examples is *scored by every learner before any learns from
it*. The learners' scores for an example are therefore paired, and the AUC differences
(LIS per probe, AIS) get the paired DeLong variance over the window of the last ``N``
examples. Chunks are cut by count, not by arrival, so a replay gives identical numbers
whatever the input's batching.

>>> from stream_lis.config import Config
>>> ev = ArmEvaluator("exp", "control", Config(), probe_names=["noise"])
>>> ev.learner_names
['clean', 'leaky:noise', 'mllm']
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .config import Config
from .events import Impression
from .features import Row, clean_features, embedding_features, embedding_lengths, hash_clean, hash_embeddings
from .join import LabelledExample
from .learners import FeatureBatch, Learner, make_learner
from .learners.bank import FTRLBank
from .probes.base import Leaked
from .stats.auc import BinnedAUC, auc, delong_many

_log = logging.getLogger("stream_lis.evaluator")


@dataclass(frozen=True)
class Interval:
    """A paired AUC difference with its confidence interval."""

    value: float
    low: float
    high: float
    se: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class LearnerStats:
    auc_window: float
    auc_cumulative: float
    auc_cumulative_error: float


@dataclass
class ArmStats:
    """What one arm reports; ``None`` where a number is undefined (never ``inf``)."""

    experiment: str
    arm: str
    labelled_positive: int
    labelled_negative: int
    window_examples: int
    learners: dict[str, LearnerStats]
    lis: dict[str, Interval]
    ais: Interval | None
    efficiency: dict[str, float | None]
    production_auc_window: float | None
    production_auc_cumulative: float | None
    has_embeddings: bool
    truncated: int = 0
    #: The arm's embedding length (the usual one of its first batch with vectors; 0: none
    #: yet), and its evaluated examples whose vector had another length, or none.
    embedding_dims: int = 0
    embedding_wrong_length: int = 0
    embedding_missing: int = 0
    impressions: int = 0
    clicks: int = 0
    #: The arm resumed from a checkpoint whose learners were built with other values than
    #: this config builds now (a release with new defaults): they stay until the arm restarts.
    learner_values_outdated: bool = False
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def labelled(self) -> int:
        return self.labelled_positive + self.labelled_negative

    @property
    def ctr(self) -> float | None:
        return self.labelled_positive / self.labelled if self.labelled else None


def learner_names(probe_names: Sequence[str]) -> list[str]:
    """An arm's learners, in column order: clean, one leaky per probe, mllm."""
    return ["clean", *(f"leaky:{p}" for p in probe_names), "mllm"]


def _interval(value: float, low: float, high: float, se: float) -> Interval:
    """A paired difference and its interval; none (NaN bounds) when the variance came out
    zero under a nonzero difference. That happens on a handful of examples (every score of
    one learner tied, the other's separating them): the interval ``[d, d]`` would read as
    certain and make the efficiency defined."""
    if not se > 0 and value != 0:
        return Interval(value, math.nan, math.nan, se)
    return Interval(value, low, high, se)


class ScoreWindow:
    """Ring buffer of the last ``size`` labels and paired learner scores."""

    def __init__(self, size: int, columns: int) -> None:
        self.size = size
        self.labels = np.zeros(size, dtype=np.int8)
        self.scores = np.zeros((size, columns))
        self.count = 0  # total appended

    def append(self, y: np.ndarray, scores: np.ndarray) -> None:
        n = len(y)
        if n >= self.size:
            y, scores = y[-self.size:], scores[-self.size:]
            start = (self.count + n - self.size) % self.size
            n_eff = self.size
        else:
            start, n_eff = self.count % self.size, n
        idx = (start + np.arange(n_eff)) % self.size
        self.labels[idx] = y
        self.scores[idx] = scores
        self.count += n

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        k = min(self.count, self.size)
        return self.labels[:k], self.scores[:k]


def _with_leaked(clean: FeatureBatch, block: Leaked) -> FeatureBatch:
    """The clean feature set plus one probe's leaked features, hashed column-wise."""
    return clean.plus(block.hashed, lambda: [{**c, **x} if x else c for c, x in zip(clean.rows, block.rows())])


#: (experiment, arm, learner) already said to give non-finite scores in this process.
_UNSCORABLE_SAID: set[tuple[str, str, str]] = set()
#: ``learner.crosses`` pairs said to match nothing (``ArmEvaluator._check_crosses``).
_CROSSES_SAID: set[tuple[str, str]] = set()


def _carries(imp: Impression, name: str) -> bool:
    """Whether a cross can read ``name`` from the impression (as ``features.clean_features``)."""
    return name in ("user", "item") or name in imp.features


class ArmEvaluator:
    """The learners of one (experiment, arm) and the statistics of their paired scores."""

    #: See ``ArmStats``; class defaults also serve evaluators restored from older checkpoints.
    embedding_dims = 0
    embedding_wrong_length = 0
    embedding_missing = 0
    #: Whether ``learner.crosses`` were checked against the arm's first chunk (``_check_crosses``).
    crosses_checked = False

    def __init__(self, experiment: str, arm: str, cfg: Config, probe_names: Sequence[str]) -> None:
        self.experiment, self.arm = experiment, arm
        self.cfg = cfg
        self.probe_names = list(probe_names)
        self.learner_names = learner_names(probe_names)
        self.learners: dict[str, Learner] = {n: make_learner(cfg.learner) for n in self.learner_names}
        self._banked = FTRLBank.of(list(self.learners.values()), fresh=True)
        k = len(self.learner_names)
        # Column k holds the production score (NaN where the event had none).
        self.window = ScoreWindow(cfg.evaluation.window_size, k + 1)
        self.cumulative = [BinnedAUC(cfg.evaluation.cumulative_bins) for _ in range(k + 1)]
        self.positives = 0
        self.negatives = 0
        self.has_embeddings = False
        self.truncated = 0
        # Released examples not yet evaluated: the examples, each probe's leaked blocks (one
        # per release, covering them in order) and completeness. Chunks of exactly
        # ``batch_size`` are cut from the front.
        self._examples: list[LabelledExample] = []
        self._leaked: dict[str, list[Leaked]] = {p: [] for p in self.probe_names}
        self._complete: list[bool] = []
        self._version = 0  # chunks evaluated; also the stats cache key
        self._cached: tuple[int, ArmStats] | None = None

    def __setstate__(self, state: dict) -> None:
        if "_buffer" in state:  # a checkpoint written before buffers were column-wise
            buf = state.pop("_buffer")
            state["_examples"] = [ex for ex, _, _ in buf]
            state["_leaked"] = {p: [Leaked.from_rows([lk[p] for _, lk, _ in buf])] if buf else []
                                for p in state["probe_names"]}
            state["_complete"] = [c for _, _, c in buf]
        self.__dict__.update(state)

    def __getstate__(self) -> dict:
        # The bank is the learners' tables side by side: rebuilt from the learners (which
        # pickle their compact state) on first use, never pickled whole.
        state = self.__dict__.copy()
        state.pop("_banked", None)
        return state

    def _bank(self) -> FTRLBank | None:
        """The arm's learners in one table (``learners.bank``), while they can share one:
        built on first use, and again after a restore gave the learners their own tables."""
        members = [self.learners[name] for name in self.learner_names]
        bank = self.__dict__.get("_banked")
        if bank is None or not bank.holds(members):
            bank = self._banked = FTRLBank.of(members)
        return bank

    def add(self, example: LabelledExample, leaked: dict[str, Row], complete: bool = True) -> None:
        """Queue one released example (see ``add_many``)."""
        self.add_many([example], {p: Leaked.from_rows([leaked[p]]) for p in self.probe_names}, [complete])

    def add_many(self, examples: Sequence[LabelledExample], leaked: dict[str, Leaked],
                 complete: Sequence[bool] | None = None) -> None:
        """Queue released examples with each probe's leaked features for them (a block per
        probe, parallel to ``examples``); chunks of ``batch_size`` are evaluated as they fill.

        ``complete[k] = False`` marks an example released by the end of a finite input before
        its future window was over: the learners still learn from it, but it is left out of
        the AUCs, since its leaked features saw a truncated future and would dilute LIS.
        """
        if not examples:
            return
        self._examples.extend(examples)
        for p in self.probe_names:
            self._leaked[p].append(leaked[p])
        self._complete.extend(complete if complete is not None else [True] * len(examples))
        bs = self.cfg.learner.batch_size
        total = len(self._examples)
        if total >= bs:
            n = total - total % bs
            blocks = {p: Leaked.concat(b) for p, b in self._leaked.items()}
            for k in range(0, n, bs):
                self._evaluate(self._examples[k:k + bs], {p: b.take(k, k + bs) for p, b in blocks.items()},
                               self._complete[k:k + bs])
            del self._examples[:n], self._complete[:n]
            self._leaked = {p: [b.take(n, total)] if n < total else [] for p, b in blocks.items()}

    def flush(self) -> None:
        """Evaluate a partial chunk (end of input, shutdown, or a freshness deadline)."""
        if self._examples:
            self._evaluate(self._examples, {p: Leaked.concat(b) for p, b in self._leaked.items()}, self._complete)
            self._examples, self._complete = [], []
            self._leaked = {p: [] for p in self.probe_names}

    @property
    def chunks(self) -> int:
        return self._version

    @property
    def buffered(self) -> int:
        return len(self._examples)

    def _evaluate(self, examples: Sequence[LabelledExample], leaked: dict[str, Leaked],
                  complete_flags: Sequence[bool]) -> None:
        crosses = self.cfg.learner.crosses
        imps = [ex.impression for ex in examples]
        n = len(imps)
        if crosses and not self.crosses_checked:
            self._check_crosses(imps)
        y = np.fromiter((ex.label for ex in examples), dtype=np.int8, count=n)
        # Vectorised learners read the hashed form, built straight from the events; dict rows
        # are built only if a per-event (River) learner asks for them.
        clean = FeatureBatch(n=n, hash_fn=lambda bits: hash_clean(imps, crosses, bits),
                             rows_fn=lambda: [clean_features(imp, crosses) for imp in imps])
        lengths = embedding_lengths(imps)
        if self.has_embeddings or lengths[1].any():
            self.has_embeddings = True
            self._count_embedding_mismatches(lengths[1])
        mllm = clean.plus(lambda bits: hash_embeddings(imps, bits, lengths),
                          lambda: [{**c, **embedding_features(imp)} if imp.embedding else c
                                   for c, imp in zip(clean.rows, imps)])
        batches = {"clean": clean, "mllm": mllm}
        for p in self.probe_names:
            batches[f"leaky:{p}"] = _with_leaked(clean, leaked[p])
        # Prequential: all learners score the chunk, then all learn from it.
        prod = np.fromiter((math.nan if i.score is None else i.score for i in imps), dtype=np.float64, count=n)
        yf = y.astype(np.float64)
        bank = self._bank()
        if bank is not None:
            p, step = bank.predict([batches[name] for name in self.learner_names])
            scores = np.empty((n, len(self.learner_names) + 1))
            scores[:, :-1] = p
            scores[:, -1] = prod
            bank.learn(step, yf)
        else:
            cols = [self.learners[name].predict_batch(batches[name]) for name in self.learner_names]
            scores = np.column_stack([*cols, prod])
            for name in self.learner_names:
                self.learners[name].learn_batch(batches[name], yf)
        learnt = scores[:, :-1]
        if not np.isfinite(learnt).all():
            self._unscorable(learnt)
        pos = int(y.sum())
        self.positives += pos
        self.negatives += n - pos
        self._version += 1
        complete = np.fromiter(complete_flags, dtype=bool, count=n)
        if not complete.all():
            self.truncated += int((~complete).sum())
            y, scores, prod = y[complete], scores[complete], prod[complete]
        self.window.append(y, scores)
        has = ~np.isnan(prod)
        if has.all():  # every event had a production score: its column goes with the rest
            BinnedAUC.update_columns(self.cumulative, y, scores)
            return
        BinnedAUC.update_columns(self.cumulative[:-1], y, scores[:, :-1])
        if has.any():
            self.cumulative[-1].update_many(y[has], prod[has])

    def _check_crosses(self, imps: Sequence[Impression]) -> None:
        """Say once (per cross, per process) that a ``learner.crosses`` pair matched none of an
        arm's first chunk: a misspelt feature name is accepted by the config (the features are
        the producers'), and its cross would silently add nothing to every learner."""
        self.crosses_checked = True
        for a, b in self.cfg.learner.crosses:
            if (a, b) in _CROSSES_SAID or any(_carries(imp, a) and _carries(imp, b) for imp in imps):
                continue
            _CROSSES_SAID.add((a, b))
            seen = sorted({k for imp in imps for k in imp.features})
            _log.warning("learner.crosses [%r, %r]: none of the first %d examples of %s/%s carries both (their "
                         "features: %s; user and item are always there), so the cross adds nothing; a misspelt "
                         "name?", a, b, len(imps), self.experiment, self.arm, ", ".join(seen[:20]) or "none")

    def _unscorable(self, learnt: np.ndarray) -> None:
        """Score 0.5 (no information) where a learner gave NaN or infinity, and say so once
        per arm and learner. Feature values are bounded on input (``events.MAX_ABS_VALUE``),
        so the built-in learners stay finite; a River model chosen by config can diverge (too
        high a learning rate), and its NaN must not stop the worker at the AUC update."""
        bad = ~np.isfinite(learnt)
        for j in np.flatnonzero(bad.any(axis=0)):
            name = self.learner_names[j]
            if (self.experiment, self.arm, name) not in _UNSCORABLE_SAID:
                _UNSCORABLE_SAID.add((self.experiment, self.arm, name))
                _log.error("%s/%s: learner %s gave %d non-finite scores in a chunk of %d (a diverging model: lower its "
                          "learning rate in learner.params); they are scored 0.5, so its AUC and LIS mean little "
                          "until the arm restarts", self.experiment, self.arm, name, int(bad[:, j].sum()), len(learnt))
        learnt[bad] = 0.5

    def _count_embedding_mismatches(self, lens: np.ndarray) -> None:
        """Count examples whose vector has another length than the arm's, or none.

        Either is accepted (the mllm learner reads the coordinates there are: a longer vector
        also fills columns the others leave empty), but a producer sending truncated or
        mixed-model vectors, or a side table missing items, would otherwise only show as a
        weaker AIS. Said once per arm in the log; counted in the metrics.
        """
        present = lens > 0
        if not self.embedding_dims:
            # The arm's length: the usual one of its first vectors.
            self.embedding_dims = int(np.bincount(lens[present]).argmax())
        wrong = int((present & (lens != self.embedding_dims)).sum())
        missing = len(lens) - int(present.sum())
        for what, n, before in (("a vector of another length than", wrong, self.embedding_wrong_length),
                                ("no vector, unlike", missing, self.embedding_missing)):
            if n and not before:
                _log.warning("%s/%s: %d examples with %s the arm's %d-coordinate embeddings (counted in "
                             "stream_lis_embedding_mismatches_total; said once)",
                             self.experiment, self.arm, n, what, self.embedding_dims)
        self.embedding_wrong_length += wrong
        self.embedding_missing += missing

    def stats(self) -> ArmStats:
        """The arm's figures from the current window (cached until the next chunk)."""
        if self._cached is not None and self._cached[0] == self._version:
            return self._cached[1]
        level = self.cfg.evaluation.confidence_level
        labels, scores = self.window.view()
        k = len(self.learner_names)
        nan = math.nan
        pairs = delong_many(labels, scores[:, :k], reference=0, level=level) if len(labels) else []
        learners = {}
        for j, name in enumerate(self.learner_names):
            if name == "mllm" and not self.has_embeddings:
                # No representation reached the arm: its mllm learner saw the clean features
                # alone. Reported, its AUC (the clean one's) would read "the MLLM adds nothing".
                continue
            aw = pairs[j].auc_b if pairs else nan
            cum = self.cumulative[j]
            learners[name] = LearnerStats(aw, cum.auc(), cum.error_bound())
        diff = {name: _interval(p.diff, p.ci_low, p.ci_high, p.se) for name, p in zip(self.learner_names, pairs)}
        lis = {p: diff.get(f"leaky:{p}", Interval(nan, nan, nan, nan)) for p in self.probe_names}
        ais = diff.get("mllm") if self.has_embeddings else None
        eff: dict[str, float | None] = {}
        for p, iv in lis.items():
            # Defined only where the probe's LIS is significantly positive: a ratio over an
            # LIS whose interval covers 0 is noise, and over a negative one meaningless.
            ok = ais is not None and math.isfinite(iv.low) and iv.low > 0 and math.isfinite(ais.value)
            eff[p] = ais.value / iv.value if ok else None
        prod = scores[:, k] if len(labels) else np.empty(0)
        has = ~np.isnan(prod)
        prod_w = auc(labels[has], prod[has]) if has.sum() > 1 else nan
        prod_c = self.cumulative[-1].auc() if self.cumulative[-1].n_pos + self.cumulative[-1].n_neg else nan
        out = ArmStats(
            experiment=self.experiment,
            arm=self.arm,
            labelled_positive=self.positives,
            labelled_negative=self.negatives,
            window_examples=len(labels),
            learners=learners,
            lis=lis,
            ais=ais,
            efficiency=eff,
            production_auc_window=None if math.isnan(prod_w) else prod_w,
            production_auc_cumulative=None if math.isnan(prod_c) else prod_c,
            has_embeddings=self.has_embeddings,
            truncated=self.truncated,
            embedding_dims=self.embedding_dims,
            embedding_wrong_length=self.embedding_wrong_length,
            embedding_missing=self.embedding_missing,
        )
        self._cached = (self._version, out)
        return out
