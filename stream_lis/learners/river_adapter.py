"""Any River classifier as a stream_lis learner, driven one example at a time.

This is the general path: whatever ``river`` classifier the config names (trees, bandits,
pipelines) works unchanged, at River's per-event speed.

>>> from river import linear_model
>>> from stream_lis.learners.base import FeatureBatch
>>> m = RiverLearner(linear_model.LogisticRegression())
>>> for _ in range(100): m.learn_batch(FeatureBatch([{"x": 1.0}, {"x": -1.0}]), np.array([1, 0]))
>>> bool(m.predict_batch(FeatureBatch([{"x": 1.0}]))[0] > 0.6)
True
"""

from __future__ import annotations

import numpy as np

from .base import FeatureBatch, Learner


class RiverLearner(Learner):
    """Wraps ``predict_proba_one`` / ``learn_one`` of a River classifier."""

    def __init__(self, model) -> None:
        self.model = model

    def predict_batch(self, batch: FeatureBatch) -> np.ndarray:
        predict = self.model.predict_proba_one
        return np.fromiter((predict(x).get(True, 0.0) for x in batch.rows), dtype=np.float64, count=len(batch))

    def learn_batch(self, batch: FeatureBatch, y: np.ndarray) -> None:
        learn = self.model.learn_one
        for x, label in zip(batch.rows, y.tolist()):
            learn(x, bool(label))
