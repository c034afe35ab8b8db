"""The probe interface: one preference-data candidate, turned into leaked features.

A probe answers one question for a released example: *had the ranker known this piece of
preference data, which features would it have had?* Probes that use future behaviour read
it from the shared ``BehaviourLog`` restricted to the example's window ``(t, t + H]``, and
must leave out the example's own impression and click: otherwise the label itself leaks
and LIS would measure the label, not the preference data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

from ..features import Row
from ..join import LabelledExample
from .log import BehaviourLog


class Probe(ABC):
    """Base class: subclasses set ``name`` and implement ``leaked``."""

    name: str = ""

    @abstractmethod
    def leaked(self, examples: Sequence[LabelledExample], log: BehaviourLog, horizon_ms: int) -> list[Row]:
        """Leaked features, one row per example, built from ``(t, t + horizon_ms]`` only."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
