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


def coverage_study(seeds: Iterable[int], impressions: int = 60_000, split: str = "0.7",
                   overrides: dict[str, Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """Per seed and arm: does the streaming 95% interval cover the offline value?

    Both are computed in one pass over the same stream (``run_offline(stream=True)``): the
    streaming learners' prequential scores on exactly the offline test examples give the
    streaming interval; the batch models trained on the examples before the split give the
    offline value. Also counts how often the streaming ``noise`` interval (final window)
    excludes 0.
    """
    from .offline import run_offline

    cfg = load_config(None, {"probes.enabled": ["future_item", "noise"], **(overrides or {})})
    hits: dict[str, list[bool]] = {"LIS[future_item]": [], "AIS": []}
    noise: list[bool] = []
    rows = []
    for seed in seeds:
        res = run_offline(simulator_records(SimulatorConfig(impressions=impressions, seed=seed)), cfg, split, stream=True)
        for arm in res.arms:
            off, st, fin = arm.stats, arm.stream_same_examples, arm.stream_final
            if off is None or st is None:
                continue
            pairs = [("LIS[future_item]", off.lis["future_item"], st.lis["future_item"])]
            if off.ais is not None and st.ais is not None:
                pairs.append(("AIS", off.ais, st.ais))
            for key, o, s in pairs:
                hits[key].append(s.low <= o.value <= s.high)
                rows.append((seed, arm.arm, key, o.value, s.value, s.low, s.high))
            if fin is not None:
                noise.extend(noise_excludes_zero([fin]))
        if progress:
            print(f"  seed {seed}: " + ", ".join(f"{r[1]} {r[2]} offline {r[3]:+.4f} stream {r[4]:+.4f} [{r[5]:+.4f}, {r[6]:+.4f}]"
                                                 for r in rows if r[0] == seed), flush=True)
    return {"coverage": {k: (sum(v), len(v)) for k, v in hits.items()}, "noise_excludes_zero": (sum(noise), len(noise)),
            "rows": rows}
