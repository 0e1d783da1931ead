"""Rounding: answer probabilities to a fixed number of decimals (Tramer et al., USENIX Security 2016,
studies rounding as a countermeasure; IBM ART `Rounded(decimals=3)`).

Why: equation-solving and fine-grained distillation attacks need the low-order digits; rounding
removes them. It does little against learning-based thieves (ART: `Rounded(1)` changed nothing in
our prototype), but costs nothing either; it is the usual last stage of a stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgeguard.defenses.base import Defense, fill_empty_rows


@dataclass(frozen=True)
class Round(Defense):
    """out = round(p, decimals); a row rounded to all zeros becomes the label-only answer.

    Source: Tramer et al., USENIX Security 2016; IBM ART `Rounded`.

    keeps_top1 = False: rounding never lowers the top class below another, but it can tie it with a
    lower-index class, and np.argmax then picks that one. Rows no longer sum exactly to 1.
    """

    name: ClassVar[str] = "round"
    keeps_top1: ClassVar[bool] = False
    sums_to_one: ClassVar[bool] = False

    decimals: int = 3

    def check(self) -> None:
        self.require(
            0 <= self.decimals <= 15,
            f"decimals must be between 0 and 15 (float64 holds ~16 digits), got {self.decimals}",
        )

    def apply(self, probs: np.ndarray, inputs: np.ndarray | None) -> np.ndarray:
        return fill_empty_rows(probs.round(self.decimals), probs)
