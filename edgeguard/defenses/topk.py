"""Top-k: answer only the k most likely classes (Tramer, Zhang, Juels, Reiter, Ristenpart; "Stealing
Machine Learning Models via Prediction APIs", USENIX Security 2016, which discusses coarser outputs
as a countermeasure; commercial APIs answer top-k).

Why: the zeroed tail is the "dark knowledge" a soft-label thief distils from; the answer itself (and
the next k-1 guesses) stays. k=1 without renormalising leaves only the top probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgeguard.defenses.base import Defense


@dataclass(frozen=True)
class TopK(Defense):
    """Keep the k largest probabilities of each row, zero the rest; optionally rescale to sum to 1.

    Source: Tramer et al., USENIX Security 2016 (coarse outputs as a countermeasure).

    Ties are broken by class index (a stable sort), like np.argmax, so the top class is always kept
    and stays the top. k larger than the number of classes keeps every class.
    """

    name: ClassVar[str] = "topk"
    keeps_top1: ClassVar[bool] = True

    k: int
    renormalize: bool = True

    @property
    def sums_to_one(self) -> bool:  # type: ignore[override]  # depends on a parameter
        return self.renormalize

    def check(self) -> None:
        self.require(self.k >= 1, f"k must be >= 1 (how many classes to keep), got {self.k}")

    def apply(self, probs: np.ndarray, inputs: np.ndarray | None) -> np.ndarray:
        # zero all but the k first of each row's stable descending order (one fancy-index write;
        # put/take_along_axis would cost more than the rest of the stack at batch 1)
        drop = np.argsort(-probs, axis=1, kind="stable")[:, self.k :]
        out = probs.copy()
        out[np.arange(len(probs))[:, None], drop] = 0.0
        if not self.renormalize:
            return out
        # no row is empty: the row's top class is kept, and a valid row's top probability is > 0
        return np.divide(out, out.sum(axis=1, keepdims=True), out=out)
