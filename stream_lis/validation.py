"""Validation on simulator streams with a planted truth: are the reported numbers right?

Two studies, used by ``studies/validation_study.py`` (figures for the README) and guarded by
tests on smaller streams:

* ``fidelity_sweep``: one stream whose arms serve MLLM representations derived from the
  simulator's preference dataset (each item's latent quality) at fidelities from none to
  perfect, with that dataset fed to the ``external`` probe. The paper's claim, reproduced:
  AIS rises with fidelity and approaches LIS[external] without exceeding it beyond the
  confidence interval.
* ``coverage``: per seed, the streaming intervals against the offline (batch, time-split)
  values on the same stream, and how often the ``noise`` probe's interval excludes 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from .config import Config, load_config
from .engine import Engine
from .evaluator import ArmStats
from .probes import ExternalProbe, build_probes
from .runtime.sources import simulator_records
from .simulator import SimulatorConfig

#: Fidelities of the sweep's arms, none to perfect.
FIDELITIES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class SweepPoint:
    fidelity: float
    ais: float
    ais_low: float
    ais_high: float
    lis_external: float
    lis_low: float
    lis_high: float


def run_stream(sim: SimulatorConfig, cfg: Config, with_truth: bool = True, batch: int = 2000) -> Engine:
    """The embedded core over a simulator stream; ``with_truth`` adds the ``external`` probe
    fed with the simulator's preference dataset as items are born."""
    truth = ExternalProbe() if with_truth else None
    probes = [*build_probes(cfg.probes), *([truth] if truth else [])]
    eng = Engine(cfg, probes=probes)
    buf: list[bytes] = []
    for rec in simulator_records(sim, truth.set_vector if truth else None):
        buf.append(rec)
        if len(buf) == batch:
            eng.process_records(buf)
            buf = []
    eng.process_records(buf)
    eng.flush()
    return eng


def fidelity_sweep(impressions: int = 400_000, seed: int = 3, fidelities: Iterable[float] = FIDELITIES,
                   overrides: dict[str, Any] | None = None) -> list[SweepPoint]:
    fids = {f"f{f:.2f}": f for f in fidelities}
    cfg = load_config(None, {"probes.enabled": ["future_item", "noise"], **(overrides or {})})
    eng = run_stream(SimulatorConfig(impressions=impressions, seed=seed, arms=fids), cfg)
    out = []
    for a in eng.snapshot().arms:
        ais, lis = a.ais, a.lis["external"]
        assert ais is not None
        out.append(SweepPoint(fids[a.arm], ais.value, ais.low, ais.high, lis.value, lis.low, lis.high))
    return sorted(out, key=lambda p: p.fidelity)


def noise_excludes_zero(arms: Iterable[ArmStats]) -> list[bool]:
    return [a.lis["noise"].excludes_zero() for a in arms if "noise" in a.lis]
