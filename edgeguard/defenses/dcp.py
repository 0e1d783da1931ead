"""DCP: reverse sigmoid gated to low-confidence queries (Khaled, Dhaouadi, Gohring de Magalhaes,
Nicolescu; "Efficient Defense Against Model Stealing Attacks on Convolutional Neural Networks",
ICMLA 2023, https://arxiv.org/abs/2309.01838; code: github.com/KacemKhaled/defending-extraction,
`method_dcp`).

Why: reverse sigmoid's perturbation costs honest users calibration on every answer. Like adaptive
misinformation, DCP assumes thieves' queries are the ones the model is unsure about, and perturbs
only those, with no second model to train or run: cheap enough for an edge device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgeguard.defenses.base import Defense, confidence_gate, normalize_rows
from edgeguard.defenses.reverse_sigmoid import perturbation

SHARPNESS = 1000.0  # the paper's (and its code's) fixed nu


@dataclass(frozen=True)
class DCP(Defense):
    """out = normalize(clip(p - alpha r, 0, 1)), alpha = 1 / (1 + exp(1000 (max p - beta_gate))),
    r = rs_beta (sigmoid(rs_gamma logit p) - 1/2) as in reverse sigmoid.

    Source: Khaled et al., ICMLA 2023 (https://arxiv.org/abs/2309.01838).

    The authors' code uses one beta for both the gate and the perturbation's strength and no clip:
    set rs_beta = beta_gate to match it; the clip (and the label-only fallback for a row it
    empties) keeps outputs non-negative. Gated rows can flip top-1 as in reverse sigmoid.
    """

    name: ClassVar[str] = "dcp"
    keeps_top1: ClassVar[bool] = False
    sums_to_one: ClassVar[bool] = True

    beta_gate: float
    rs_beta: float = 1.0
    rs_gamma: float = 0.1

    def check(self) -> None:
        self.require(
            0 < self.beta_gate <= 1,
            f"beta_gate must be in (0, 1] (queries with max probability below it are perturbed), got {self.beta_gate}",
        )
        self.require(self.rs_beta > 0, f"rs_beta must be > 0, got {self.rs_beta}")
        self.require(self.rs_gamma > 0, f"rs_gamma must be > 0, got {self.rs_gamma}")

    def apply(self, probs: np.ndarray, inputs: np.ndarray | None) -> np.ndarray:
        alpha = confidence_gate(probs, self.beta_gate, SHARPNESS)
        r = perturbation(probs, self.rs_beta, self.rs_gamma)
        return normalize_rows(np.clip(probs - alpha * r, 0.0, 1.0), probs)
