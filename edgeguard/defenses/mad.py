"""MAD (prediction poisoning), argmax-preserving (Orekondy, Schiele, Fritz; "Prediction Poisoning:
Towards Defenses Against DNN Model Stealing Attacks", ICLR 2020, https://arxiv.org/abs/1906.10908;
reference code: github.com/tribhuvanesh/prediction-poisoning, class `MAD`).

Why: a thief trains its surrogate along the gradient G^T y of its loss on the victim's answer y. MAD
answers a nearby y~ (within an L1 ball of radius eps) whose gradient points as far as possible from
the true one, so each answer pushes the surrogate the wrong way; this variant keeps top-1.

What is implemented, exactly, and why (numpy only: no autograd and no surrogate network on device):

1. The gradient. MAD takes G = grad_w log F(x; w) of a randomly initialised surrogate, restricted
   to its last layer (the reference's default). For a softmax head z = W phi(x) + b the gradient of
   -log softmax(z)_k with respect to W is (s - e_k) phi^T, s = softmax(z), so for y~ on the simplex
       G^T y~ = sum_k y~_k (s - e_k) phi^T = (s - y~) phi^T,
   and the angle between G^T y~ and G^T y is the angle between s - y~ and s - y: phi cancels, only
   the surrogate's prediction s matters. So no trunk is needed. The surrogate is a seeded, randomly
   initialised last layer (PyTorch nn.Linear's default init) applied to the one feature vector the
   device holds for every query, the victim's answer y: s = softmax(W y + b).
2. The objective is the reference's ||u/|u| - v/|v|||^2, u = G^T y~, v = G^T y; by 1 it equals
   2 - 2 cos(s - y~, s - y), which is what is computed (tests check it against an explicit G).
3. The search is the reference's argmax-preserving oracle: candidates y* are uniform over a set of
   classes that holds y's top class, whose weight is raised by 1e-5 so it stays strictly on top.
   The reference enumerates every set for K <= 10 classes and grows one greedily beyond (start from
   the top class; repeatedly add the class that maximises the objective; keep the best set seen),
   capped at 1024 evaluations. Here the greedy growth runs for every K, to completion: one code
   path, O(K^2) per query because each candidate's objective is evaluated in closed form. On small
   K it can miss the exhaustive optimum.
4. The answer moves from y towards y* as far as the budget allows (the reference's closed-form line
   search): y~ = (1 - a) y + a y*, a = min(1, eps / ||y* - y||_1). y* keeps top-1 strictly and y
   weakly, so y~ keeps it strictly; ||y~ - y||_1 <= eps.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from edgeguard.defenses.base import Defense, normalize_rows
from edgeguard.runtime.model import softmax

RAISE = 1e-5  # the reference's extra weight on the top class, so a candidate keeps it strictly
TINY = 1e-300  # guards divisions by a norm that is exactly zero (then the numerator is zero too)


@lru_cache(maxsize=8)
def surrogate_layer(seed: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(W (classes, classes), b): nn.Linear's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(classes)
    w, b = rng.uniform(-bound, bound, (classes, classes)), rng.uniform(-bound, bound, classes)
    w.flags.writeable = b.flags.writeable = False  # cached and shared: nobody may edit them
    return w, b


def surrogate_probs(y: np.ndarray, seed: int) -> np.ndarray:
    """s = softmax(W y + b) per row, rows computed one at a time: a batched matmul rounds
    differently from a single row's, which would make an answer depend on the rest of the batch."""
    w, b = surrogate_layer(seed, y.shape[1])
    logits = np.empty_like(y)
    for i, row in enumerate(y):
        logits[i] = (w * row).sum(axis=1) + b
    return softmax(logits)


def argmax_preserving_target(y: np.ndarray, s: np.ndarray, top: np.ndarray) -> np.ndarray:
    """The vertex y* of the greedy search (module docstring, 3): minimises cos(y* - s, y - s)."""
    n, k = y.shape
    rows = np.arange(n)
    d = y - s
    d_norm = np.sqrt((d * d).sum(axis=1, keepdims=True))
    s_dot_d = (s * d).sum(axis=1, keepdims=True)
    s_dot_s = (s * s).sum(axis=1, keepdims=True)

    def cosine(set_d: np.ndarray, set_s: np.ndarray, size: int) -> np.ndarray:
        """cos(c - s, d) for c uniform over `size` classes with the top raised; set_x = (size + RAISE) c.x"""
        m = size + RAISE
        c_dot_c = (size - 1 + (1 + RAISE) ** 2) / m**2
        dist = np.sqrt(np.maximum(c_dot_c - 2 * set_s / m + s_dot_s, 0.0))
        return (set_d / m - s_dot_d) / (dist * d_norm + TINY)

    in_set = np.zeros((n, k), dtype=bool)
    in_set[rows, top] = True
    set_d = (1 + RAISE) * d[rows, top][:, None]  # sums over the set, the top class counted 1 + RAISE
    set_s = (1 + RAISE) * s[rows, top][:, None]
    best, best_set = cosine(set_d, set_s, 1), in_set.copy()
    for size in range(2, k + 1):
        candidates = cosine(set_d + d, set_s + s, size)
        candidates[in_set] = np.inf
        pick = candidates.argmin(axis=1)
        value = candidates[rows, pick][:, None]
        in_set[rows, pick] = True
        set_d += d[rows, pick][:, None]
        set_s += s[rows, pick][:, None]
        better = value[:, 0] < best[:, 0]
        best[better] = value[better]
        best_set[better] = in_set[better]
    vertex = best_set.astype(np.float64)
    vertex[rows, top] += RAISE
    return vertex / vertex.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class MAD(Defense):
    """Argmax-preserving MAD: the answer within L1 distance eps of y whose surrogate gradient is
    turned furthest from the true one (module docstring for the exact approximation).

    Source: Orekondy et al., ICLR 2020 (https://arxiv.org/abs/1906.10908).

    Input rows are renormalised first (MAD works on the simplex). `seed` picks the surrogate's
    random last layer; MAD itself is deterministic: the same answer always gets the same poison.
    """

    name: ClassVar[str] = "mad"
    keeps_top1: ClassVar[bool] = True
    sums_to_one: ClassVar[bool] = True

    eps: float = 0.5
    seed: int = 0

    def check(self) -> None:
        self.require(
            0 < self.eps <= 2,
            f"eps must be in (0, 2] (an L1 distance between distributions), got {self.eps}",
        )
        self.require(self.seed >= 0, f"seed must be >= 0, got {self.seed}")

    def apply(self, probs: np.ndarray, inputs: np.ndarray | None) -> np.ndarray:
        y = normalize_rows(probs, probs)
        target = argmax_preserving_target(y, surrogate_probs(y, self.seed), probs.argmax(axis=1))
        distance = np.abs(target - y).sum(axis=1, keepdims=True)
        a = np.minimum(1.0, self.eps / np.maximum(distance, TINY))
        return (1.0 - a) * y + a * target
