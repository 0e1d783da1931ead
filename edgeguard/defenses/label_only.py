"""Label only: answer the one-hot of the top class (the strongest output-shaping defense; Tramer et al.,
USENIX Security 2016; Orekondy et al. call it the argmax defense).

Why: a soft-label thief gets nothing but labels, and honest users who read the label lose nothing.
It is also the limit of what output shaping can do: an argmax thief is not hindered at all.

IBM ART's `ClassLabels` writes `class_labels[:, np.argmax(preds, axis=1)] = 1`: every row gets a 1
at every row's argmax, so a batch's answers leak into each other. Here each row is one-hot on its
own argmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgeguard.defenses.base import Defense, one_hot


@dataclass(frozen=True)
class LabelOnly(Defense):
    """out[i] = one_hot(argmax p[i]) (first index among ties).

    Source: Tramer et al., USENIX Security 2016; IBM ART `ClassLabels` (without its batch bug).
    """

    name: ClassVar[str] = "label_only"
    keeps_top1: ClassVar[bool] = True
    sums_to_one: ClassVar[bool] = True

    def apply(self, probs: np.ndarray, inputs: np.ndarray | None) -> np.ndarray:
        return one_hot(probs)
