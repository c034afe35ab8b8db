"""A click-stream simulator with a planted truth, so the reported numbers can be checked.

What it plants (and what the default run must therefore show):

* Every item has a latent **quality** ``q`` that no impression-time feature carries. Items
  are born continuously and live a few hours, so when an item is fresh the ranker knows
  nothing of ``q``; only its *future* behaviour reveals it. Hence ``future_item`` (the
  item's clicks and impressions in the look-ahead window) has a **clearly positive LIS**.
* The ``noise`` probe leaks nothing: its LIS is **indistinguishable from 0**.
* Each arm serves an MLLM item representation whose first coordinate is
  ``f * q_z + sqrt(1 - f^2) * noise`` (``q_z`` the standardised quality, ``f`` the arm's
  *fidelity*; other coordinates are noise). Default fidelities: ``control`` 0.3 (weak),
  ``treatment`` 0.8 (strong). Hence **AIS(treatment) > AIS(control)** (control, weak, gains
  little and may not differ from 0), both below the
  LIS of a probe that reveals ``q`` exactly (``--preferences`` writes that dataset for the
  ``external`` probe).
* Clicks also depend on a user bias, a user-segment x item-category affinity, position
  and device; the production ``score`` knows all of them except ``q``.
* Data quality issues, at small configurable rates: duplicate clicks, orphan clicks, late
  impressions, out-of-order arrival within the allowed lateness.

Event time starts at a fixed epoch, so a seed determines the stream byte for byte.

>>> evs = list(Simulator(SimulatorConfig(impressions=50, seed=1)).events())
>>> sum(e["type"] == "impression" for e in evs)
50
>>> evs == list(Simulator(SimulatorConfig(impressions=50, seed=1)).events())
True
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

#: 2026-01-01T00:00:00Z in epoch milliseconds: the simulated clock's origin.
EPOCH_MS = 1_767_225_600_000

DEVICES = ("ios", "android", "web")
DEVICE_EFFECT = (0.15, 0.0, -0.2)


@dataclass
class SimulatorConfig:
    """Knobs of the simulated world; defaults give the documented truth in ~300k events."""

    impressions: int = 300_000
    seed: int = 7
    users: int = 5_000
    live_items: int = 400
    item_lifetime_s: float = 4 * 3600.0
    impressions_per_s: float = 4.0
    experiment: str = "lis_demo"
    arms: dict[str, float] = field(default_factory=lambda: {"control": 0.3, "treatment": 0.8})
    embedding_dims: int = 8
    base_logit: float = -2.6
    quality_sd: float = 0.9
    segments: int = 8
    categories: int = 12
    click_delay_mean_s: float = 90.0
    arrival_jitter_s: float = 20.0
    duplicate_click_rate: float = 0.01
    orphan_click_rate: float = 0.002
    late_impression_rate: float = 0.001
    late_delay_s: float = 900.0
    #: Events carry no ``embedding``; ``Simulator.embedding_records()`` gives the same
    #: vectors as a side table (``embeddings.path``), the way teams keep them.
    side_embeddings: bool = False


class _Item:
    __slots__ = ("id", "q", "cat", "emb", "death")

    def __init__(self, id: str, q: float, cat: int, emb: dict[str, list[float]], death: float) -> None:
        self.id, self.q, self.cat, self.emb, self.death = id, q, cat, emb, death


class Simulator:
    """Generates impression and click events (dicts in the wire schema) in arrival order."""

    def __init__(self, cfg: SimulatorConfig | None = None, on_item: Callable[[str, list[float]], None] | None = None) -> None:
        """``on_item(item_id, vector)`` is told each item's preference record as it is born."""
        self.cfg = cfg or SimulatorConfig()
        self.on_item = on_item
        c = self.cfg
        self.rng = np.random.default_rng(c.seed)
        r = self.rng
        self.user_bias = r.normal(0, 0.5, c.users)
        self.user_seg = r.integers(0, c.segments, c.users)
        self.user_device = r.integers(0, len(DEVICES), c.users)
        # Zipf-like activity: a few heavy users, a long tail.
        w = 1.0 / np.arange(1, c.users + 1) ** 0.7
        self.user_p = w / w.sum()
        self.affinity = r.normal(0, 0.5, (c.segments, c.categories))
        arms = list(c.arms)
        self.user_arm = [arms[k] for k in r.integers(0, len(arms), c.users)]
        self.items: list[_Item] = []
        #: Every item's quality, for ``preferences()`` (not the items: an endless stream keeps
        #: only its live items, a float per item ever born).
        self.qualities: dict[str, float] = {}
        #: Every item's representation by arm (``side_embeddings`` only).
        self.embeddings: dict[str, dict[str, list[float]]] = {}
        self._next_item = 0
        self.t_ms = 0.0
        for _ in range(c.live_items):
            self.items.append(self._born(lifetime=r.uniform(0, c.item_lifetime_s) * 1000))

    def _born(self, lifetime: float | None = None) -> _Item:
        c, r = self.cfg, self.rng
        q = r.normal(0, c.quality_sd)
        qz = q / c.quality_sd
        emb = {}
        for arm, f in c.arms.items():
            v = r.normal(0, 1, c.embedding_dims)
            v[0] = f * qz + math.sqrt(max(0.0, 1 - f * f)) * v[0]
            emb[arm] = [round(float(x), 4) for x in v]
        life = lifetime if lifetime is not None else r.exponential(c.item_lifetime_s) * 1000
        item = _Item(f"item{self._next_item}", q, int(r.integers(0, c.categories)), emb, self.t_ms + life)
        self._next_item += 1
        self.qualities[item.id] = q
        if c.side_embeddings:
            self.embeddings[item.id] = emb
        if self.on_item is not None:
            self.on_item(item.id, [round(qz, 4)])
        return item

    def preferences(self) -> Iterator[dict[str, Any]]:
        """The perfect preference dataset: each item's standardised quality (``external`` probe)."""
        for item_id, q in self.qualities.items():
            yield {"item_id": item_id, "vector": [round(q / self.cfg.quality_sd, 4)]}

    def embedding_records(self) -> Iterator[dict[str, Any]]:
        """Each arm's representation of every item born so far (``side_embeddings``): the
        side table the events leave out."""
        for item_id, by_arm in self.embeddings.items():
            for arm, vector in by_arm.items():
                yield {"arm": arm, "item_id": item_id, "vector": vector}

    def events(self) -> Iterator[dict[str, Any]]:
        c, r = self.cfg, self.rng
        heap: list[tuple[float, int, dict[str, Any]]] = []
        seq = 0
        gap_ms = 1000.0 / c.impressions_per_s
        chunk = 4096
        n = 0
        while n < c.impressions:
            m = min(chunk, c.impressions - n)
            users = r.choice(c.users, size=m, p=self.user_p)
            gaps = r.exponential(gap_ms, m)
            u01 = r.random((m, 6))
            positions = r.integers(0, 10, m)
            delays = r.exponential(c.click_delay_mean_s * 1000, m)
            jit = r.uniform(0, c.arrival_jitter_s * 1000, (m, 2))
            for k in range(m):
                self.t_ms += gaps[k]
                # Items die and are replaced; pick by index (recently born items get traffic too).
                idx = int(u01[k, 0] * len(self.items))
                item = self.items[idx]
                if item.death < self.t_ms:
                    item = self.items[idx] = self._born()
                u = int(users[k])
                arm = self.user_arm[u]
                dev = int(self.user_device[u])
                pos = int(positions[k])
                known = (c.base_logit + self.user_bias[u] + self.affinity[self.user_seg[u], item.cat]
                         - 0.12 * pos + DEVICE_EFFECT[dev])
                p_click = 1.0 / (1.0 + math.exp(-(known + item.q)))
                score = 1.0 / (1.0 + math.exp(-(known + 0.25 * (u01[k, 1] - 0.5))))
                ts = int(EPOCH_MS + self.t_ms)
                iid = f"imp{n + k}"
                imp = {
                    "type": "impression", "impression_id": iid, "ts": ts, "user_id": f"user{u}",
                    "item_id": item.id, "experiment": c.experiment, "arm": arm,
                    "score": round(score, 6),
                    "features": {"device": DEVICES[dev], "position": str(pos),
                                 "segment": f"s{self.user_seg[u]}", "category": f"c{item.cat}"},
                }
                if not c.side_embeddings:
                    imp["embedding"] = item.emb[arm]
                arrive = ts + jit[k, 0]
                if u01[k, 2] < c.late_impression_rate:
                    arrive += c.late_delay_s * 1000
                heapq.heappush(heap, (arrive, seq, imp)); seq += 1
                if u01[k, 3] < p_click:
                    cts = ts + int(delays[k])
                    click = {"type": "click", "impression_id": iid, "ts": cts}
                    heapq.heappush(heap, (cts + jit[k, 1], seq, click)); seq += 1
                    if u01[k, 4] < c.duplicate_click_rate:
                        heapq.heappush(heap, (cts + jit[k, 1] + 5000, seq, dict(click, ts=cts + 3000))); seq += 1
                if u01[k, 5] < c.orphan_click_rate:
                    ghost = {"type": "click", "impression_id": f"ghost{n + k}", "ts": ts}
                    heapq.heappush(heap, (ts + jit[k, 1], seq, ghost)); seq += 1
                now = EPOCH_MS + self.t_ms
                while heap and heap[0][0] <= now:
                    yield heapq.heappop(heap)[2]
            n += m
        while heap:
            yield heapq.heappop(heap)[2]
