"""Knockoff Nets (Orekondy et al., CVPR 2019), random sampling: query a transfer set, train on answers.

The transfer set is the thief's own data: natural images from another distribution (the paper's
setting) or same-distribution data (a thief who has it). Adaptive sampling is a separate strategy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeguard.attacks.surrogate import Surrogate, train_surrogate
from edgeguard.attacks.victim import Victim

QUERY_BATCH = 64


@dataclass
class Theft:
    surrogate: Surrogate
    queries: int


def knockoff_random(
    victim: Victim, transfer: np.ndarray, budget: int, num_classes: int, soft: bool = True,
    arch: str = "small-cnn", epochs: int = 50, seed: int = 0,
) -> Theft:  # fmt: skip
    rng = np.random.default_rng(seed)
    x = transfer[rng.choice(len(transfer), size=min(budget, len(transfer)), replace=False)]
    answers = np.concatenate([victim.query(x[i : i + QUERY_BATCH]) for i in range(0, len(x), QUERY_BATCH)])
    return Theft(train_surrogate(x, answers, soft, num_classes, arch, epochs, seed=seed), victim.queries)
