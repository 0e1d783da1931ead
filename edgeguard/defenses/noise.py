"""Gaussian noise on the probabilities, clamped at 0 and renormalised (IBM ART
`GaussianNoise(scale=0.2)`, art/defences/postprocessor/gaussian_noise.py).

Why: a soft-label thief fits the noise along with the signal. Unlike ART, whose noise is fresh on
every call, the draw here is a function of the query and a per-deployment key (`row_rngs`): a thief
who repeats a query gets the same answer, so averaging repeated answers removes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgeguard.defenses.base import Defense, normalize_rows, row_rngs


@dataclass(frozen=True)
class Noise(Defense):
    """out = normalize(max(p + N(0, scale^2), 0)), the noise seeded per row by (key, query).

    Source: IBM ART `GaussianNoise` (art/defences/postprocessor/gaussian_noise.py), made deterministic.

    The query is the row's input when the caller passes `inputs`, else its probability row. Set
    `key` to a secret of your deployment: the default is public, so anyone can recompute its noise.
    Top-1 flips whenever the noise outweighs the margin to the runner-up (keeps_top1 = False).
    """

    name: ClassVar[str] = "noise"
    keeps_top1: ClassVar[bool] = False
    sums_to_one: ClassVar[bool] = True

    scale: float = 0.2
    key: str = "edgeguard"

    def check(self) -> None:
        self.require(self.scale > 0, f"scale must be > 0 (the noise's standard deviation), got {self.scale}")
        self.require(self.key != "", "key must be a non-empty string (a secret of your deployment)")

    def apply(self, probs: np.ndarray, inputs: np.ndarray | None) -> np.ndarray:
        noise = np.empty_like(probs)
        for i, rng in enumerate(row_rngs(self.key, probs, inputs)):
            noise[i] = rng.normal(0.0, self.scale, probs.shape[1])
        return normalize_rows(np.maximum(probs + noise, 0.0), probs)
