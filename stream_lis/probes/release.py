"""The columns of one release that several probes read, extracted once per release.

Each built-in probe needs some of the same per-example values (event time, item, user,
impression id, label); read one attribute chain per example and probe, they cost a Python
pass each. The pipeline opens a ``shared(examples)`` scope around a release's probes, and
inside it ``columns(examples)`` gives every probe the same lazily built columns. Outside a
scope (a probe called directly, on a list its caller may change later) each call builds its
own, so nothing is ever read from a stale cache.

>>> from stream_lis.events import Impression
>>> from stream_lis.join import LabelledExample
>>> imp = Impression(impression_id="i", ts=5, user_id="u", item_id="a", experiment="e", arm="c")
>>> ready = [LabelledExample(imp, 1, 7, 7)]
>>> with shared(ready):
...     r = columns(ready)
...     r.ts.tolist(), r.item_ids, r.user_ids, r.impression_ids, r.labels.tolist(), columns(ready) is r
([5], ['a'], ['u'], ['i'], [1], True)
>>> columns(ready) is columns(ready)  # no scope: built per call
False
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import cached_property
from typing import Iterator, Sequence

import numpy as np

from ..events import Impression
from ..join import LabelledExample


class Release:
    """Per-example columns of a release (built lazily, each once)."""

    def __init__(self, examples: Sequence[LabelledExample]) -> None:
        self.examples = examples

    @cached_property
    def impressions(self) -> list[Impression]:
        return [ex.impression for ex in self.examples]

    @cached_property
    def ts(self) -> np.ndarray:
        return np.array([imp.ts for imp in self.impressions], dtype=np.int64)

    @cached_property
    def item_ids(self) -> list[str]:
        return [imp.item_id for imp in self.impressions]

    @cached_property
    def user_ids(self) -> list[str]:
        return [imp.user_id for imp in self.impressions]

    @cached_property
    def impression_ids(self) -> list[str]:
        return [imp.impression_id for imp in self.impressions]

    @cached_property
    def labels(self) -> np.ndarray:
        return np.array([ex.label for ex in self.examples], dtype=np.int8)


#: The release being probed, per thread (the Kafka runtime evaluates on its own threads).
_scope = threading.local()


@contextmanager
def shared(examples: Sequence[LabelledExample]) -> Iterator[Release]:
    """Within this block, ``columns(examples)`` is one object (the list must not change)."""
    before = getattr(_scope, "release", None)
    _scope.release = rel = Release(examples)
    try:
        yield rel
    finally:
        _scope.release = before


def columns(examples: Sequence[LabelledExample]) -> Release:
    """The release's columns: shared inside ``shared(examples)``, built afresh otherwise."""
    rel = getattr(_scope, "release", None)
    if rel is not None and rel.examples is examples:
        return rel
    return Release(examples)
