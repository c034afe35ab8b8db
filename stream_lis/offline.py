"""Offline LIS, the paper's way: batch models on a time split, AUC on the later split.

The source paper computes LIS once, offline: the production model ``M_T`` trained on data
before a time ``T`` is the *clean* model, the same model with features from temporally leaked
data (after ``T``) is the *leaky* one, and ``LIS = AUC(leaky) - AUC(clean)`` on the
evaluation traffic from ``T`` on. ``stream-lis offline FILE --split-at T`` does exactly that
on a JSON Lines event log, per (experiment, arm):

1. **The same labelled examples and feature sets as the stream.** The file goes through the
   core unchanged (``Engine``: event clock, click join, look-ahead buffer, probes), so labels,
   leaked features (built from ``(t, t + H]`` as the probes define them, the example's own
   impression and click left out) and embeddings are the ones the streaming learners get.
   Nothing is copied from the core: each arm's ``ArmEvaluator`` runs as usual, but its
   learners are wrapped by recorders (``_Tee``) that keep every micro-batch they are asked to
   learn from, i.e. literally the rows the streaming ``clean``, ``leaky:<probe>`` and ``mllm``
   learners see. (``_CaptureArmSet`` installs them when an arm is created; no core module is
   changed.)
2. **Split at T.** Examples with impression time ``ts < T`` train, ``ts >= T`` test. ``T`` is
   an event time: epoch milliseconds (``1767232800000``), an RFC 3339 time
   (``2026-01-01T02:00:00Z``; no offset means UTC), or a fraction strictly between 0 and 1
   (``0.7``): the 70% quantile of the labelled impressions' event times, all arms pooled,
   so one ``T`` holds for every arm.
3. **Batch models.** Per arm, one fresh learner per feature set, of the kind the stream uses
   (``make_learner(cfg.learner)``; by default FTRL-Proximal logistic regression on hashed
   features), trained with ``learn_batch`` on micro-batches of ``learner.batch_size`` for
   ``passes`` passes (default 5) over the training examples, each pass in a shuffled order
   drawn from a fixed seed; every learner of an arm sees the same order.
4. **Numbers.** Every model scores the test examples; AUCs, ``LIS[probe] = AUC(leaky:probe) -
   AUC(clean)`` and ``AIS = AUC(mllm) - AUC(clean)`` are paired differences on the same test
   examples with DeLong intervals (``delong_many``) at ``evaluation.confidence_level``.
   Alignment efficiency ``AIS / LIS[probe]`` is given, as in the stream, only where LIS is
   significantly positive. Examples from ``T`` on whose look-ahead window reaches past the end
   of the file (the last ``max(W, H)``) are neither trained on nor tested (their leaked
   features saw a truncated future): ``n_truncated``. Training takes every example before
   ``T``, so with ``T`` inside that last stretch it includes some such examples.

How offline numbers relate to streaming ones, and when they differ
--------------------------------------------------------------------
Both measure the same thing: the AUC a ranking learner gains when it is given the leaked
features (LIS) or the MLLM representation (AIS), on the same examples and feature sets. They
differ in how the learners learnt:

* **Batch vs online.** An offline model has seen all pre-``T`` data several times and is then
  frozen; a streaming learner scores each example before learning from it, having seen each
  earlier example once. Streaming LIS therefore includes *how fast* a learner exploits the
  leak (early in a stream, or right after drift, streaming LIS is smaller than the leak's
  eventual worth), while offline LIS is the leak's worth to a converged model.
* **Frozen vs adapting baseline.** The offline clean model knows nothing of items, users or
  behaviour that first appear after ``T``, whereas the streaming clean learner keeps learning
  them as they arrive. Where the world changes within the test period (fresh items, a
  trend), future-revealing probes are worth *more* offline than online; with a long test
  period offline LIS grows with the test period's length, which the stream's LIS does not.
* **Windowed vs split.** The stream reports LIS over a sliding window of the last
  ``window_size`` examples; offline reports it over the whole test split. Compare them on the
  same traffic (a window about as long as the test split, or ``--compare-stream``, which scores
  the stream's prequential predictions on exactly the test examples).
* **Drift.** If LIS or AIS moved over the test period, the stream's final window shows its
  end, offline shows its average over the split.

On a stationary stream with a short test period the two agree within their intervals; a
persistent gap measures what the stream's learners have not yet caught up with.

>>> split_from_text("0.7"), split_from_text("1767232800000"), split_from_text("2026-01-01T02:00:00Z")
(('fraction', 0.7), ('time', 1767232800000), ('time', 1767232800000))
>>> resolve_split(("fraction", 0.5), np.array([0, 10, 20, 30]))
15
>>> split_from_text("1e300")
Traceback (most recent call last):
...
stream_lis.offline.OfflineError: --split-at '1e300': an event time must lie in [0, 253402300799999] epoch milliseconds (up to the year 9999)
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import msgspec
import numpy as np

from .arms import ArmKey, ArmSet
from .config import Config, to_dict
from .embedding_table import EmbeddingTable
from .engine import Engine
from .events import MAX_TS_MS
from .evaluator import ArmEvaluator, ArmStats, Interval, LearnerStats
from .features import Hashed
from .join import LabelledExample
from .labeller import InvalidSink
from .learners import FeatureBatch, Learner, make_learner
from .learners.hashed import HashedLearner
from .probes import Probe, build_probes
from .stats.auc import auc, delong_many
from .summary import _clean

__all__ = ["OfflineError", "OfflineDataError", "OfflineArm", "OfflineResult", "run_offline", "run_offline_file", "split_from_text",
           "resolve_split", "render_offline", "to_json", "format_time"]

#: Examples per micro-batch while capturing (only the capture; training uses learner.batch_size).
_CAPTURE_CHUNK = 2048


class OfflineError(ValueError):
    """The offline computation cannot run as asked (bad split, no train or test data)."""


class OfflineDataError(OfflineError):
    """The input holds nothing to evaluate (no labelled example, no arm with both training and
    test data): a problem of the data, not of the arguments."""


# -- the split time ------------------------------------------------------------------------

def split_from_text(text: str) -> tuple[str, float | int]:
    """``("fraction", f)`` for ``0 < f < 1``, else ``("time", epoch_ms)``; see the module doc."""
    s = str(text).strip()
    try:
        x = float(s)
    except ValueError:
        x = None
    if x is not None:
        if not math.isfinite(x):
            raise OfflineError(f"--split-at: not a time or fraction: {text!r}")
        if 0 < x < 1:
            return ("fraction", x)
        if x == int(x) and x >= 0:
            return _event_time(text, int(x))
        raise OfflineError(f"--split-at {text!r}: a fraction must lie strictly between 0 and 1, and an event time "
                           "must be whole epoch milliseconds or RFC 3339 (e.g. 2026-01-01T02:00:00Z)")
    try:
        t = dt.datetime.fromisoformat(s)
    except ValueError:
        raise OfflineError(f"--split-at {text!r}: expected epoch milliseconds, an RFC 3339 time "
                           "(e.g. 2026-01-01T02:00:00Z) or a fraction such as 0.7") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return _event_time(text, int(round(t.timestamp() * 1000)))


def _event_time(text: str, ms: int) -> tuple[str, int]:
    """``("time", ms)`` for an event time the input can hold (the events' own bound): a
    split beyond it would be checked against no record and fail only when printed."""
    if not 0 <= ms <= MAX_TS_MS:
        raise OfflineError(f"--split-at {text!r}: an event time must lie in [0, {MAX_TS_MS}] epoch milliseconds "
                           "(up to the year 9999)")
    return ("time", ms)


def resolve_split(spec: tuple[str, float | int], impression_ts: np.ndarray) -> int:
    """The split time in epoch ms; a fraction is that quantile of ``impression_ts`` (rounded)."""
    kind, value = spec
    if kind == "time":
        return int(value)
    if len(impression_ts) == 0:
        raise OfflineError("no labelled example in the input: nothing to split")
    return int(round(float(np.quantile(np.asarray(impression_ts, dtype=np.float64), float(value)))))


def format_time(ms: int) -> str:
    """RFC 3339 (UTC, milliseconds) of an epoch-ms event time."""
    t = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- capture: what the streaming learners are fed ------------------------------------------

class _HashedBatch(FeatureBatch):
    """A micro-batch known only in hashed form (what the vectorised FTRL learner reads)."""

    __slots__ = ()

    def __init__(self, X: Hashed, bits: int) -> None:
        super().__init__(n=X.n_rows)
        self._hashed[bits] = X

    @property
    def rows(self):  # type: ignore[override]
        raise TypeError("this batch is stored hashed only; the learner must read batch.hashed(bits)")


def _concat_rows(blocks: Sequence[Hashed]) -> Hashed:
    """Stack CSR blocks vertically."""
    if not blocks:
        return Hashed(np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32), np.zeros(0))
    offsets = np.cumsum([0] + [int(b.indptr[-1]) for b in blocks[:-1]])
    indptr = np.concatenate([[0]] + [b.indptr[1:] + o for b, o in zip(blocks, offsets)]).astype(np.int64)
    return Hashed(indptr, np.concatenate([b.indices for b in blocks]), np.concatenate([b.data for b in blocks]))


def _take_rows(X: Hashed, idx: np.ndarray) -> Hashed:
    """Rows ``idx`` of a CSR matrix, in that order, vectorised."""
    starts = X.indptr[idx]
    lens = X.indptr[idx + 1] - starts
    indptr = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(lens, out=indptr[1:])
    pos = np.repeat(starts - indptr[:-1], lens) + np.arange(indptr[-1])
    return Hashed(indptr, X.indices[pos], X.data[pos])


class _FeatureStore:
    """One feature set's rows of one arm, in capture order: hashed (FTRL) or as dicts (River)."""

    def __init__(self, bits: int | None) -> None:
        self.bits = bits
        self._blocks: list[Hashed] = []
        self._rows: list[dict[str, float]] = []
        self._X: Hashed | None = None
        self.n = 0

    def add(self, batch: FeatureBatch) -> None:
        if self.bits is not None:
            X = batch.hashed(self.bits)
            self._blocks.append(Hashed(X.indptr, X.indices.astype(np.int32), X.data))
        else:
            self._rows.extend(batch.rows)
        self.n += len(batch)

    def batch(self, idx: np.ndarray) -> FeatureBatch:
        if self.bits is not None:
            if self._X is None:
                self._X = _concat_rows(self._blocks)
                self._blocks = []
            return _HashedBatch(_take_rows(self._X, idx), self.bits)
        return FeatureBatch([self._rows[i] for i in idx.tolist()])


@dataclass
class _ArmCapture:
    """Everything captured for one arm, row k = the k-th example its evaluator was given."""

    key: ArmKey
    bits: int | None
    learner_names: list[str] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    complete: list[bool] = field(default_factory=list)
    production: list[float] = field(default_factory=list)
    example_labels: list[int] = field(default_factory=list)
    #: labels as the learners were given them, chunk by chunk (checks the rows line up)
    labels: list[np.ndarray] = field(default_factory=list)
    features: dict[str, _FeatureStore] = field(default_factory=dict)
    stream_scores: dict[str, list[np.ndarray]] = field(default_factory=dict)
    evaluator: ArmEvaluator | None = None

    def attach(self, evaluator: ArmEvaluator) -> None:
        """Take the learner names (and so the feature sets) from the arm's evaluator."""
        if not self.learner_names:
            self.learner_names = list(evaluator.learner_names)
            self.features = {n: _FeatureStore(self.bits) for n in self.learner_names}
            self.stream_scores = {n: [] for n in self.learner_names}
        self.evaluator = evaluator


class _Tee(Learner):
    """Records each micro-batch a streaming learner is given; delegates to it if there is one.

    Without a real learner it scores 0.5 (the capture-only evaluator's windows are unused).
    """

    def __init__(self, name: str, cap: _ArmCapture, real: Learner | None) -> None:
        self.name, self.cap, self.real = name, cap, real

    def predict_batch(self, batch: FeatureBatch) -> np.ndarray:
        if self.real is None:
            return np.full(len(batch), 0.5)
        p = self.real.predict_batch(batch)
        self.cap.stream_scores[self.name].append(np.asarray(p, dtype=np.float64))
        return p

    def learn_batch(self, batch: FeatureBatch, y: np.ndarray) -> None:
        self.cap.features[self.name].add(batch)
        if self.name == "clean":
            self.cap.labels.append(np.asarray(y, dtype=np.int8))
        if self.real is not None:
            self.real.learn_batch(batch, y)


class _CaptureEvaluator(ArmEvaluator):
    """The arm's evaluator as the stream runs it, its learners wrapped by ``_Tee`` recorders."""

    def __init__(self, experiment: str, arm: str, cfg: Config, probe_names: Sequence[str], cap: _ArmCapture,
                 stream: bool) -> None:
        super().__init__(experiment, arm, cfg, probe_names)
        self.cap = cap
        cap.attach(self)
        self.learners = {n: _Tee(n, cap, l if stream else None) for n, l in self.learners.items()}

    def add_many(self, examples: Sequence[LabelledExample], leaked: dict, complete: Sequence[bool] | None = None) -> None:
        for k, example in enumerate(examples):
            imp = example.impression
            self.cap.ts.append(imp.ts)
            self.cap.complete.append(True if complete is None else complete[k])
            self.cap.production.append(math.nan if imp.score is None else imp.score)
            self.cap.example_labels.append(example.label)
        super().add_many(examples, leaked, complete)


class _CaptureArmSet(ArmSet):
    """``ArmSet`` whose arms get a capturing evaluator when they are created."""

    def __init__(self, cfg: Config, probe_factory: Callable[[], Sequence[Probe]], stream: bool,
                 embeddings: EmbeddingTable | None = None) -> None:
        super().__init__(cfg, probe_factory, embeddings)
        self.stream = stream
        self.captures: dict[ArmKey, _ArmCapture] = {}
        probe = make_learner(cfg.learner)
        self.bits = probe.bits if isinstance(probe, HashedLearner) else None
        # Capture in large chunks when only capturing (features do not depend on chunking);
        # with the stream alongside, chunks must be the stream's own.
        self.capture_cfg = cfg if stream else msgspec.structs.replace(
            cfg, learner=msgspec.structs.replace(cfg.learner, batch_size=max(cfg.learner.batch_size, _CAPTURE_CHUNK)))

    def arm(self, key: ArmKey):
        new = key not in self.arms
        a = super().arm(key)
        if new:
            cap = self.captures.setdefault(key, _ArmCapture(key, self.bits))
            a.evaluator = _CaptureEvaluator(key[0], key[1], self.capture_cfg, [p.name for p in self.probes], cap,
                                            self.stream)
        return a


# -- results -------------------------------------------------------------------------------

@dataclass
class OfflineArm:
    """One arm's offline figures (``stats`` in the streaming table's shape) and split sizes."""

    experiment: str
    arm: str
    n_train: int
    n_test: int
    n_train_positive: int
    n_test_positive: int
    n_truncated: int
    stats: ArmStats | None
    auc_train: dict[str, float]
    skipped: str | None = None
    #: with ``stream=True``: the stream's prequential scores on the same test examples
    stream_same_examples: ArmStats | None = None
    #: with ``stream=True``: the stream's own final figures (its sliding window)
    stream_final: ArmStats | None = None


@dataclass
class OfflineResult:
    split_at_ms: int
    split_spec: str
    passes: int
    seed: int
    arms: list[OfflineArm]
    records: int
    invalid: dict[str, int]
    probes: list[str]
    seconds: float
    config: Config


def _figures(exp: str, arm: str, cfg: Config, names: list[str], probe_names: list[str], y: np.ndarray,
             scores: np.ndarray, prod: np.ndarray, has_emb: bool, train_auc: dict[str, float] | None) -> ArmStats:
    """AUCs, LIS, AIS and efficiency of paired scores, shaped as the stream's ``ArmStats``."""
    nan = math.nan
    pairs = delong_many(y, scores, reference=0, level=cfg.evaluation.confidence_level)
    # As in the stream: no mllm learner without a representation (it scored the clean features).
    learners = {n: LearnerStats(p.auc_b, (train_auc or {}).get(n, nan), 0.0) for n, p in zip(names, pairs)
                if has_emb or n != "mllm"}
    diff = {n: Interval(p.diff, p.ci_low, p.ci_high, p.se) for n, p in zip(names, pairs)}
    lis = {p: diff.get(f"leaky:{p}", Interval(nan, nan, nan, nan)) for p in probe_names}
    ais = diff.get("mllm") if has_emb else None
    eff: dict[str, float | None] = {}
    for p, iv in lis.items():
        ok = ais is not None and math.isfinite(iv.low) and iv.low > 0 and math.isfinite(ais.value)
        eff[p] = ais.value / iv.value if ok else None
    has = ~np.isnan(prod)
    prod_auc = auc(y[has], prod[has]) if has.sum() > 1 else nan
    pos = int(y.sum())
    return ArmStats(experiment=exp, arm=arm, labelled_positive=pos, labelled_negative=len(y) - pos,
                    window_examples=len(y), learners=learners, lis=lis, ais=ais, efficiency=eff,
                    production_auc_window=None if math.isnan(prod_auc) else prod_auc,
                    production_auc_cumulative=None, has_embeddings=has_emb, impressions=len(y), clicks=pos)


def _predict(learner: Learner, store: _FeatureStore, idx: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    return np.concatenate([learner.predict_batch(store.batch(idx[k:k + chunk])) for k in range(0, len(idx), chunk)]
                          or [np.zeros(0)])


def _fit_arm(cap: _ArmCapture, cfg: Config, probe_names: list[str], split_ms: int, passes: int, seed: int,
             stream: bool, stream_final: ArmStats | None) -> OfflineArm:
    exp, arm = cap.key
    ts = np.asarray(cap.ts, dtype=np.int64)
    complete = np.asarray(cap.complete, dtype=bool)
    y = np.asarray(cap.example_labels, dtype=np.int8)
    prod = np.asarray(cap.production, dtype=np.float64)
    # Row k of every feature store is the k-th example added (chunks are evaluated in order);
    # the labels the learners were given must therefore be the examples' labels, in order.
    fed = np.concatenate(cap.labels) if cap.labels else np.zeros(0, dtype=np.int8)
    if not np.array_equal(fed, y) or any(f.n != len(y) for f in cap.features.values()):
        raise RuntimeError(f"offline capture out of step for {exp}/{arm}: {len(fed)} rows for {len(y)} examples")
    train = np.flatnonzero(ts < split_ms)
    test = np.flatnonzero((ts >= split_ms) & complete)
    truncated = int(((ts >= split_ms) & ~complete).sum())
    base = dict(experiment=exp, arm=arm, n_train=len(train), n_test=len(test), n_train_positive=int(y[train].sum()),
                n_test_positive=int(y[test].sum()), n_truncated=truncated, stream_final=stream_final)
    why = None
    if len(train) == 0:
        why = "no training example (every impression of this arm is at or after the split)"
    elif len(test) == 0:
        why = "no test example at or after the split"
        if truncated:
            why = (f"no complete test example: the {truncated:,} examples at or after the split all lie within "
                   f"max(W, H) of the end of the input, where their look-ahead window is cut off (split earlier)")
    elif y[train].min() == y[train].max():
        why = "training examples are all of one class"
    elif y[test].min() == y[test].max():
        why = "test examples are all of one class: AUC undefined"
    if why is not None:
        return OfflineArm(**base, stats=None, auc_train={}, skipped=why)

    names = cap.learner_names
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(train) for _ in range(passes)]
    bs = cfg.learner.batch_size
    yf = y.astype(np.float64)
    test_scores, train_auc = [], {}
    for n in names:
        learner, store = make_learner(cfg.learner), cap.features[n]
        for order in orders:
            for k in range(0, len(order), bs):
                idx = order[k:k + bs]
                learner.learn_batch(store.batch(idx), yf[idx])
        test_scores.append(_predict(learner, store, test))
        train_auc[n] = auc(y[train], _predict(learner, store, train))
    has_emb = bool(cap.evaluator is not None and cap.evaluator.has_embeddings)
    stats = _figures(exp, arm, cfg, names, probe_names, y[test], np.column_stack(test_scores), prod[test], has_emb,
                     train_auc)
    same = None
    if stream:
        s = np.column_stack([np.concatenate(cap.stream_scores[n]) for n in names])
        same = _figures(exp, arm, cfg, names, probe_names, y[test], s[test], prod[test], has_emb, None)
    return OfflineArm(**base, stats=stats, auc_train=train_auc, stream_same_examples=same)


def run_offline(records: Iterable[bytes | str], cfg: Config, split: str | tuple[str, float | int], *,
                passes: int = 5, seed: int = 7, probes: Sequence[Probe] | None = None, stream: bool = False,
                batch: int = 5_000, on_invalid: InvalidSink | None = None,
                where: Callable[[int], str] | None = None) -> OfflineResult:
    """Offline LIS of an event log (raw JSON records in arrival order); see the module doc.

    ``stream=True`` also runs the streaming learners in the same pass (bit-identical to a plain
    ``Engine`` run) and reports, per arm, their prequential figures on exactly the test
    examples and their own final window. ``on_invalid(invalid, source)``: each rejected record
    (a dead-letter file), its source ``where(k)`` for the ``k``-th record when given.
    """
    if passes < 1:
        raise OfflineError("--passes must be >= 1")
    spec = split_from_text(split) if isinstance(split, str) else split
    t0 = time.perf_counter()
    probe_list = list(probes) if probes is not None else build_probes(cfg.probes)
    eng = Engine(cfg, probes=probe_list, on_invalid=on_invalid)
    # The engine's second stage, with capturing evaluators; everything else is the stream's.
    armset = eng.armset = _CaptureArmSet(cfg, lambda: probe_list, stream, eng.armset.embeddings)
    it, done = iter(records), 0
    while buf := list(itertools.islice(it, batch)):
        eng.process_records(buf, where=(lambda k, base=done: where(base + k)) if where is not None else None)
        done += len(buf)
    eng.flush()
    caps = [armset.captures[k] for k in sorted(armset.captures)]
    all_ts = np.concatenate([np.asarray(c.ts, dtype=np.int64) for c in caps]) if caps else np.zeros(0, np.int64)
    if len(all_ts) == 0:
        raise OfflineDataError(f"no labelled example in the input: {_why_empty(eng)}")
    split_ms = resolve_split(spec, all_ts)
    first, last = int(all_ts.min()), int(all_ts.max())
    span = f"labelled impressions run from {format_time(first)} ({first}) to {format_time(last)} ({last})"
    if split_ms <= first:
        hint = " (epoch milliseconds expected; was it seconds?)" if spec[0] == "time" and split_ms < 10 ** 11 else ""
        raise OfflineError(f"split at {format_time(split_ms)} ({split_ms}){hint} leaves no training data: {span}")
    if split_ms > last:
        raise OfflineError(f"split at {format_time(split_ms)} ({split_ms}) leaves no test data: {span}")
    probe_names = [p.name for p in probe_list]
    finals: dict[ArmKey, ArmStats] = {}
    if stream:  # the stream's own final figures, as `stream-lis run` would report them
        finals.update(eng.ended)
        finals.update({k: a.stats() for k, a in eng.pipelines.items()})
    arms = [_fit_arm(c, cfg, probe_names, split_ms, passes, seed, stream, finals.get(c.key)) for c in caps]
    if not any(a.stats is not None for a in arms):
        raise OfflineDataError(f"split at {format_time(split_ms)} ({split_ms}): no arm has both training and test data "
                           f"with both labels ({'; '.join(f'{a.experiment}/{a.arm}: {a.skipped}' for a in arms)})")
    c = eng.counters
    spec_text = split if isinstance(split, str) else f"{spec[0]}={spec[1]}"
    return OfflineResult(split_ms, str(spec_text), passes, seed, arms, c.records, dict(c.invalid), probe_names,
                         time.perf_counter() - t0, cfg)


def _why_empty(eng: Engine) -> str:
    """Why the engine labelled nothing, in the words of ``run``'s table (rejections by reason,
    clicks by outcome)."""
    from .table import why_no_arm

    c = eng.counters
    read = c.records + sum(c.invalid.values())
    why = why_no_arm(c, read)
    if why is not None:
        if c.records == 0:
            why += ": a wrong file, or the `experiments` config not naming the input's arms?"
        return why
    return "the input has no record" if read == 0 else "no impression was labelled"


def run_offline_file(path: str, cfg: Config, split: str, **kw: Any) -> OfflineResult:
    """``run_offline`` on a JSON Lines file (``-`` for stdin); dead letters name ``file:line``."""
    from .runtime.sources import numbered_file_records

    records, where = numbered_file_records(path, cfg.limits.max_event_bytes)
    return run_offline(records, cfg, split, where=where, **kw)


# -- output --------------------------------------------------------------------------------

def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def render_offline(res: OfflineResult) -> str:
    """The per-arm table, in the streaming table's layout (``table.render_arm``)."""
    from .table import level_text, render_arm

    level = level_text(res.config.evaluation.confidence_level)
    invalid = sum(res.invalid.values())
    lines = [f"offline LIS: split at {format_time(res.split_at_ms)} ({res.split_at_ms}, --split-at {res.split_spec}) | "
             f"{res.passes} pass{'' if res.passes == 1 else 'es'}, seed {res.seed} | records read "
             f"{res.records + invalid:,} | accepted {res.records:,} | invalid {invalid:,}"]
    for a in res.arms:
        lines.append("")
        head = (f"{a.experiment} / {a.arm}: train {a.n_train:,} (ts < split)  test {a.n_test:,}"
                + (f" (+{a.n_truncated:,} truncated)" if a.n_truncated else ""))
        if a.stats is None:
            lines += [head, f"  skipped: {a.skipped}"]
            continue
        st = a.stats
        prod = "-" if st.production_auc_window is None else f"{st.production_auc_window:.4f}"
        lines.append(f"{head}  CTR(test) {_pct(st.ctr)}  production AUC(test) {prod}")
        lines.append(f"  {'learner':<22}{'AUC test':>11}{'train':>9}   {'gain over clean (' + level + 'CI)':<36}AIS/LIS")
        lines.extend(render_arm(st)[2:])
        if a.stream_same_examples is not None:
            lines.append("  stream (prequential) on the same test examples: " + _gains(a.stream_same_examples))
        if a.stream_final is not None:
            lines.append(f"  stream, its final window ({a.stream_final.window_examples:,} examples): "
                         + _gains(a.stream_final))
    lines += ["", f"  * the {level}interval excludes 0; AIS/LIS shown where LIS is significantly positive"]
    return "\n".join(lines)


def _gains(s: ArmStats) -> str:
    """LIS per probe and AIS, values only (a comparison line under the offline figures)."""
    parts = [f"LIS[{p}] {iv.value:+.4f}" for p, iv in s.lis.items() if math.isfinite(iv.value)]
    if s.ais is not None and math.isfinite(s.ais.value):
        parts.append(f"AIS {s.ais.value:+.4f}")
    return ", ".join(parts) or "-"


def _iv(iv: Interval | None) -> dict[str, float] | None:
    return None if iv is None else {"value": iv.value, "low": iv.low, "high": iv.high, "se": iv.se}


def _stats_doc(st: ArmStats) -> dict[str, Any]:
    return {
        "auc": {n: s.auc_window for n, s in st.learners.items()},
        "lis": {p: _iv(iv) for p, iv in st.lis.items()},
        "ais": _iv(st.ais),
        "efficiency": dict(st.efficiency),
    }


def to_json(res: OfflineResult, source: str | None = None) -> dict[str, Any]:
    """The result as plain data (NaN written as ``null``)."""
    arms = []
    for a in res.arms:
        d: dict[str, Any] = {"experiment": a.experiment, "arm": a.arm, "split_at_ms": res.split_at_ms,
                             "split_at": format_time(res.split_at_ms), "n_train": a.n_train, "n_test": a.n_test,
                             "n_train_positive": a.n_train_positive, "n_test_positive": a.n_test_positive,
                             "n_truncated": a.n_truncated, "skipped": a.skipped}
        if a.stats is not None:
            st = a.stats
            d.update(_stats_doc(st))
            d["auc_train"] = dict(a.auc_train)
            d["ctr_test"] = st.ctr
            d["production_auc_test"] = st.production_auc_window
        if a.stream_same_examples is not None or a.stream_final is not None:
            d["stream"] = {
                "same_examples": None if a.stream_same_examples is None else _stats_doc(a.stream_same_examples),
                "final_window": None if a.stream_final is None else dict(
                    _stats_doc(a.stream_final), window_examples=a.stream_final.window_examples),
            }
        arms.append(d)
    return _clean({
        "mode": "offline",
        "source": source,
        "split": {"at_ms": res.split_at_ms, "at": format_time(res.split_at_ms), "spec": res.split_spec},
        "passes": res.passes,
        "seed": res.seed,
        "probes": res.probes,
        "confidence_level": res.config.evaluation.confidence_level,
        "records": res.records,
        "invalid": res.invalid,
        "seconds": round(res.seconds, 3),
        "arms": arms,
        "config": to_dict(res.config),
    })
