"""Reverse sigmoid (Lee, Edraki, Qi; "Defending Against NN Model Stealing Attacks Using Deceptive
Perturbations", IEEE S&P Workshops 2019, https://arxiv.org/abs/1806.00054).

Why it hurts a soft-label thief: the perturbation bends each probability through a scaled sigmoid of
its own logit, so the served vector is no longer the softmax of anything near the victim's logits; a
surrogate trained to match it by cross-entropy is pulled towards wrong logits. The argmax mostly
survives, so an argmax thief is not slowed at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgeguard.defenses.base import Defense, clip01_, logit, normalize_rows, sigmoid


def perturbation(probs: np.ndarray, beta: float, gamma: float) -> np.ndarray:
    """r = beta * (sigmoid(gamma * logit(p)) - 1/2), with p clipped to [1e-9, 1 - 1e-9] in the logit."""
    r = sigmoid(gamma * logit(probs))
    r -= 0.5  # in place: the same values as beta * (s - 0.5), without two more arrays
    r *= beta
    return r


@dataclass(frozen=True)
class ReverseSigmoid(Defense):
    """out = normalize(clip(p - r, 0, 1)), r as in `perturbation` (the paper's form, ART's defaults).

    Source: Lee et al., IEEE S&P Workshops 2019 (https://arxiv.org/abs/1806.00054).

    The map p -> p - r has slope 1 - beta*gamma at p = 1/2 (sigmoid' = 1/4 there, logit' = 4): as
    beta*gamma nears or passes 1 it stops being increasing, the order of the classes breaks and top-1
    flips (beta = gamma = 1 flips most answers); even below 1 it is not monotone near p = 0, hence
    keeps_top1 = False. The clip never empties a row: r > 0 only where p > 1/2, one class at most.
    """

    name: ClassVar[str] = "reverse_sigmoid"
    keeps_top1: ClassVar[bool] = False
    sums_to_one: ClassVar[bool] = True

    beta: float = 1.0
    gamma: float = 0.1

    def check(self) -> None:
        self.require(self.beta > 0, f"beta must be > 0 (it scales the perturbation), got {self.beta}")
        self.require(self.gamma > 0, f"gamma must be > 0 (the sigmoid's slope), got {self.gamma}")

    def apply(self, probs: np.ndarray, inputs: np.ndarray | None) -> np.ndarray:
        r = perturbation(probs, self.beta, self.gamma)
        return normalize_rows(clip01_(np.subtract(probs, r, out=r)), probs)
