"""Online learners: the built-in vectorised FTRL logistic regression, or any River classifier."""

from __future__ import annotations

import importlib

from ..config import ConfigError, LearnerConfig
from .base import FeatureBatch, Learner
from .ftrl import FTRLLogisticRegression
from .river_adapter import RiverLearner

__all__ = ["FeatureBatch", "Learner", "FTRLLogisticRegression", "RiverLearner", "make_learner", "check_learner"]


def make_learner(cfg: LearnerConfig) -> Learner:
    """A fresh learner as the config names it (``"ftrl"`` or a River class's dotted path)."""
    if cfg.model == "ftrl":
        return FTRLLogisticRegression(bits=cfg.hash_bits, **cfg.params)
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
