"""High-confidence cut: answer only the probabilities at or above a cutoff (IBM ART
`HighConfidence(cutoff=0.25)`, art/defences/postprocessor/high_confidence.py).

Why: small probabilities carry the inter-class similarities a soft-label thief learns most from;
the confident part of the answer, which is what an honest user reads, stays exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgeguard.defenses.base import Defense, fill_empty_rows


@dataclass(frozen=True)
class HighConfidence(Defense):
    """out = p where p >= cutoff, else 0; not renormalised (as ART).

    Source: IBM ART `HighConfidence` (art/defences/postprocessor/high_confidence.py).

    A row whose top probability is below the cutoff would be all zeros (ART answers that); here it
    becomes the label-only answer instead, so every answer still names a class.
    """

    name: ClassVar[str] = "high_confidence"
    keeps_top1: ClassVar[bool] = True
    sums_to_one: ClassVar[bool] = False

    cutoff: float = 0.25

    def check(self) -> None:
        self.require(0 < self.cutoff <= 1, f"cutoff must be in (0, 1], got {self.cutoff}")

    def apply(self, probs: np.ndarray, inputs: np.ndarray | None) -> np.ndarray:
        return fill_empty_rows(np.where(probs >= self.cutoff, probs, 0.0), probs)
