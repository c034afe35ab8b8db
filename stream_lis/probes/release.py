"""The columns of one release that several probes read, extracted once per release.

Each built-in probe needs some of the same per-example values (event time, item, user,
impression id, label); read one attribute chain per example and probe, they cost a Python
pass each. ``columns(examples)`` builds them on first use and hands the same object to every
probe of the release (the cache holds the last release asked about, by identity).

>>> from stream_lis.events import Impression
>>> from stream_lis.join import LabelledExample
>>> imp = Impression(impression_id="i", ts=5, user_id="u", item_id="a", experiment="e", arm="c")
>>> ready = [LabelledExample(imp, 1, 7, 7)]
>>> r = columns(ready)
>>> r.ts.tolist(), r.item_ids, r.user_ids, r.impression_ids, r.labels.tolist()
([5], ['a'], ['u'], ['i'], [1])
>>> columns(ready) is r, columns(list(ready)) is r
(True, False)
"""

from __future__ import annotations

from functools import cached_property
from typing import Sequence

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
        return np.fromiter((imp.ts for imp in self.impressions), dtype=np.int64, count=len(self.examples))

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
        return np.fromiter((ex.label for ex in self.examples), dtype=np.int8, count=len(self.examples))


_last: Release | None = None


def columns(examples: Sequence[LabelledExample]) -> Release:
    """The release's columns; the same object for every probe asking about the same list."""
    global _last
    last = _last  # one read: another thread may replace it meanwhile
    if last is not None and last.examples is examples:
        return last
    last = _last = Release(examples)
    return last
