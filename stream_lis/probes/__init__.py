"""Preference-data probes: each turns one candidate dataset into leaked features.

Adding a probe means one module with a ``Probe`` subclass and one line in ``build_probes``.
"""

from __future__ import annotations

from ..config import ConfigError, ProbesConfig
from .base import Probe
from .co_click import CoClickProbe
from .external import ExternalProbe
from .future_item import FutureItemProbe
from .log import BehaviourLog
from .next_click import NextClickProbe
from .noise import NoiseProbe

__all__ = ["Probe", "BehaviourLog", "build_probes", "CoClickProbe", "ExternalProbe",
           "FutureItemProbe", "NextClickProbe", "NoiseProbe"]


def build_probes(cfg: ProbesConfig, topic_fed: bool = False) -> list[Probe]:
    """The enabled probes, in configured order.

    ``topic_fed``: the caller feeds the external probe from the preferences topic (the Kafka
    worker). Anywhere else ``probes.external.from_topic`` alone would leave it empty: refused.
    """
    ext = cfg.external
    if "external" in cfg.enabled and not ext.path and not topic_fed:
        raise ConfigError("probes.external.from_topic: only the Kafka worker reads the preferences topic; "
                          "set probes.external.path to a JSON Lines file of the dataset for this command")
    factories = {
        "future_item": lambda: FutureItemProbe(cfg.future_item_prior_strength),
        "next_click": NextClickProbe,
        "co_click": lambda: CoClickProbe(cfg.co_click_top_k),
        "noise": lambda: NoiseProbe(cfg.noise_dims, cfg.noise_scale),
        "external": lambda: ExternalProbe.from_file(ext.path) if ext.path else ExternalProbe(),
    }
    return [factories[name]() for name in cfg.enabled]
