"""One monitor per deployment, one small state per API key: is this key's stream an extraction attack?

Two signals, because each misses what the other sees:
- PRADA (`prada.py`): the distances between a key's queries; flags synthetic streams (JBDA) whose
  small fixed steps make the distances non-normal. Natural-image thieves can pass it.
- OOD share (`ood.py`): how many of the key's recent queries the model itself scores as out of
  distribution; flags natural-image (Knockoff) streams, which honest users do not send steadily.
Neither flags a thief with in-distribution data sent in a natural order: budgets stop that one.

Memory per key: PRADA's sets (at most classes x per_class queries, each a copy of at most
prada_side x prada_side pixels per channel) and windows of a few thousand numbers; the state of a key is dropped once it is flagged (the flag itself persists in the keys
database), so clearing a flag starts its monitoring afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeguard.monitor.config import MonitorConfig
from edgeguard.monitor.ood import OodShare, out_of_distribution
from edgeguard.monitor.prada import Downsample, Prada


@dataclass(frozen=True)
class Flag:
    """Why a key was flagged: the signal, the key's query that raised it, the evidence in numbers."""

    signal: str  # "prada" | "ood"
    query: int  # 1-based, counted from when the monitor started watching the key
    evidence: str

    def __str__(self) -> str:
        return f"{self.signal} at query {self.query}: {self.evidence}"


class KeyMonitor:
    """The state of one key: its PRADA distances and its recent OOD verdicts."""

    def __init__(self, config: MonitorConfig, classes: int, dim: int):
        self.config = config
        self.prada = Prada(classes, dim, config.prada_per_class, config.prada_window, config.prada_min_distances)
        self.ood = OodShare(config.ood_window)
        self.queries = 0

    def observe(self, x: np.ndarray, label: int, ood: bool) -> Flag | None:
        """One query: x as PRADA compares it ((dim,) float32, `Downsample`), the model's label and OOD verdict for it."""
        cfg = self.config
        self.queries += 1
        count = self.ood.add(ood)
        if count >= cfg.ood_count:
            seen = min(self.queries, cfg.ood_window)
            return Flag("ood", self.queries, f"{count} of the last {seen} queries scored out of distribution (flag at {cfg.ood_count} of {cfg.ood_window})")
        w = self.prada.observe(x, label)
        if w is not None and w < cfg.prada_delta:
            n = min(self.prada.recorded, cfg.prada_window)
            return Flag("prada", self.queries, f"Shapiro-Wilk W {w:.4f} < {cfg.prada_delta:.4f} over {n} query distances")
        return None


class Monitor:
    """Per-key monitors of one deployment. Not thread-safe: the server calls it from its one event loop."""

    def __init__(self, config: MonitorConfig, classes: int, input_shape: tuple[int, ...]):
        self.config = config
        self.classes = classes
        self.downsample = Downsample(tuple(input_shape), config.prada_side)
        self.keys: dict[str, KeyMonitor] = {}

    def observe(self, key: str, x: np.ndarray, logits: np.ndarray) -> Flag | None:
        """A key's batch, in order: x (n, C, H, W) in [0, 1] and the model's logits (n, classes).

        Returns the first flag the batch raises (and forgets the key's state), or None.
        """
        watch = self.keys.get(key)
        if watch is None:
            watch = self.keys[key] = KeyMonitor(self.config, self.classes, self.downsample.dim)
        flat = self.downsample(x)
        labels = logits.argmax(axis=1).tolist()
        verdicts = out_of_distribution(logits, self.config.energy_threshold, self.config.signature).tolist()
        for row, label, ood in zip(flat, labels, verdicts):
            flag = watch.observe(row, label, ood)
            if flag is not None:
                del self.keys[key]
                return flag
        return None
