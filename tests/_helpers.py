"""Shared builders for the engine-level tests (imported as ``_helpers``; not a conftest).

Hand-built events use small event times (ms) and a small experiment ``e``/``c`` unless a test
says otherwise; configs come from ``load_config`` overrides so every knob is explicit.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from stream_lis.config import Config, load_config
from stream_lis.engine import Engine
from stream_lis.events import Click, Impression
from stream_lis.features import Row
from stream_lis.join import LabelledExample
from stream_lis.probes import BehaviourLog, Probe
from stream_lis.simulator import Simulator, SimulatorConfig
from stream_lis.watermark import NEG_INF, POS_INF


def imp(iid: str, ts: int, user: str = "u", item: str = "a", experiment: str = "e", arm: str = "c",
        **kw: Any) -> Impression:
    return Impression(impression_id=iid, ts=ts, user_id=user, item_id=item, experiment=experiment,
                      arm=arm, **kw)


def click(iid: str, ts: int) -> Click:
    return Click(impression_id=iid, ts=ts)


def small_cfg(window: Any = "1s", horizon: Any = "1s", lateness: Any = 0, **overrides: Any) -> Config:
    """A config with explicit W / H / lateness and no built-in probes unless overridden."""
    o: dict[str, Any] = {
        "time.attribution_window": window,
        "time.horizon": horizon,
        "time.allowed_lateness": lateness,
        "probes.enabled": [],
    }
    o.update(overrides)
    return load_config(None, o)


class RecordingProbe(Probe):
    """Leaks nothing; records every released example with the watermark at release time."""

    name = "rec"

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.released: list[tuple[str, int, int | None, int, int]] = []  # iid, label, click_ts, ts, wm
        #: impression ids of the clicks on the example's item in the behaviour log, at release
        self.logged_clicks: dict[str, list[str]] = {}

    def leaked(self, examples: Sequence[LabelledExample], log: BehaviourLog, horizon_ms: int) -> list[Row]:
        wm = self.engine.watermark.value if self.engine is not None else None
        for ex in examples:
            imp = ex.impression
            self.released.append((imp.impression_id, ex.label, ex.click_ts, imp.ts, wm))
            self.logged_clicks[imp.impression_id] = [c[2] for c in log.item_clicks(imp.item_id, NEG_INF, POS_INF)]
        return [{} for _ in examples]

    def labels(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for iid, label, *_ in self.released:
            assert iid not in out, f"impression {iid} labelled twice"
            out[iid] = label
        return out


def recording_engine(cfg: Config, **kw: Any) -> tuple[Engine, RecordingProbe]:
    probe = RecordingProbe()
    eng = Engine(cfg, probes=[probe], **kw)
    probe.engine = eng
    return eng, probe


def sim_records(impressions: int, seed: int = 7, **kw: Any) -> list[bytes]:
    """A small simulator stream as wire records (JSON bytes), in arrival order."""
    sim = Simulator(SimulatorConfig(impressions=impressions, seed=seed, **kw))
    return [json.dumps(e).encode() for e in sim.events()]


def feed(eng: Engine, records: Sequence[bytes], batch: int) -> None:
    for k in range(0, len(records), batch):
        eng.process_records(records[k:k + batch])
