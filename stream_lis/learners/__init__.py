"""Online learners: the built-in vectorised FTRL logistic regression and factorisation machine,
or any River classifier.

>>> from stream_lis.config import LearnerConfig
>>> type(make_learner(LearnerConfig(model="fm", hash_bits=12, params={"k": 4}))).__name__
'FMClassifier'
"""

from __future__ import annotations

import difflib
import importlib
import inspect

import numpy as np

from ..config import BUILTIN_LEARNERS, ConfigError, LearnerConfig
from .base import FeatureBatch, Learner
from .fm import FMClassifier
from .ftrl import FTRLLogisticRegression
from .hashed import HashedLearner
from .river_adapter import RiverLearner

__all__ = ["FeatureBatch", "Learner", "HashedLearner", "FTRLLogisticRegression", "FMClassifier", "RiverLearner",
           "make_learner", "check_learner"]

#: Built-in vectorised learners by their ``learner.model`` name.
BUILTIN = {"ftrl": FTRLLogisticRegression, "fm": FMClassifier}
assert tuple(BUILTIN) == BUILTIN_LEARNERS


def make_learner(cfg: LearnerConfig) -> Learner:
    """A fresh learner as the config names it (``"ftrl"``, ``"fm"`` or a River class's dotted path)."""
    builtin = BUILTIN.get(cfg.model)
    if builtin is not None:
        try:
            return builtin(bits=cfg.hash_bits, **cfg.params)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"learner.params: {exc}{_unknown_params(builtin, cfg.params)}") from exc
    module, _, name = cfg.model.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"learner.model: cannot import {cfg.model!r} ({exc})") from exc
    try:
        model = cls(**cfg.params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"learner.params of {cfg.model}: {exc}{_unknown_params(cls, cfg.params)}") from exc
    if not hasattr(model, "predict_proba_one") or not hasattr(model, "learn_one"):
        raise ConfigError(f"learner.model: {cfg.model!r} is not a River classifier")
    return RiverLearner(model)


def _unknown_params(cls: type, params: dict) -> str:
    """For parameters ``cls`` does not take: the one each could have meant and the ones it
    takes (Python's message names only the first it did not know).

    >>> _unknown_params(FTRLLogisticRegression, {"alphaa": 0.1})
    " ('alphaa': did you mean 'alpha'?; it takes alpha, beta, l1, l2, warmup)"
    """
    try:
        names = [n for n, p in inspect.signature(cls).parameters.items()
                 if n not in ("self", "bits") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    except (TypeError, ValueError):  # no signature to read
        return ""
    unknown = [k for k in params if k not in names]
    if not unknown or not names:
        return ""
    hints = []
    for k in unknown:
        close = difflib.get_close_matches(k, names, n=1)
        hints.append(f"{k!r}: did you mean {close[0]!r}?" if close else f"{k!r}: unknown")
    return f" ({'; '.join(hints)}; it takes {', '.join(names)})"


def check_learner(cfg: LearnerConfig) -> None:
    """Fail at start-up, not on the first example, when the learner cannot be built or
    cannot learn: it is built and takes one example and one prediction (a River model's
    parameters are only checked when they are used).

    >>> check_learner(LearnerConfig(model="river.linear_model.LogisticRegression", params={"l2": "x"}))
    Traceback (most recent call last):
    stream_lis.config.ConfigError: learner.params: river.linear_model.LogisticRegression fails on a first example: TypeError: ...
    """
    learner = make_learner(cfg)
    try:
        batch = FeatureBatch([{"check": 1.0}])
        learner.learn_batch(batch, np.array([1]))
        learner.predict_batch(batch)
    except Exception as exc:  # noqa: BLE001 - whatever a third-party model raises, said at start
        raise ConfigError(f"learner.params: {cfg.model} fails on a first example: {type(exc).__name__}: {exc}") from exc
