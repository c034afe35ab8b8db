"""Online learners: the built-in vectorised FTRL logistic regression and factorisation machine,
or any River classifier.

>>> from stream_lis.config import LearnerConfig
>>> type(make_learner(LearnerConfig(model="fm", hash_bits=12, params={"k": 4}))).__name__
'FMClassifier'
"""

from __future__ import annotations

import importlib

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
        except TypeError as exc:
            raise ConfigError(f"learner.params: {exc}") from exc
    module, _, name = cfg.model.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"learner.model: cannot import {cfg.model!r} ({exc})") from exc
    model = cls(**cfg.params)
    if not hasattr(model, "predict_proba_one") or not hasattr(model, "learn_one"):
        raise ConfigError(f"learner.model: {cfg.model!r} is not a River classifier")
    return RiverLearner(model)


def check_learner(cfg: LearnerConfig) -> None:
    """Fail at start-up, not on the first example, when the learner cannot be built."""
    make_learner(cfg)
