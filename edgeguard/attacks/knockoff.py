"""Knockoff Nets (Orekondy et al., CVPR 2019), random sampling: query a transfer set, train on answers.

The transfer set is the thief's own data (`sources.query_set`): natural images from another
distribution (the paper's setting) or same-distribution data (a thief who has it). Random sampling
makes a budget-b thief's queries a prefix of a larger thief's, so one answered stream serves every
budget (`evaluate.cells.rob`). CopycatCNN is the same steps with `soft=False`.
"""

from __future__ import annotations

import numpy as np

from edgeguard.attacks.victim import Victim

QUERY_BATCH = 64


def ask(victim: Victim, x: np.ndarray, batch: int = QUERY_BATCH) -> np.ndarray:
    """Send every query, in batches as a client would; the victim counts each input."""
    return np.concatenate([victim.query(x[i : i + batch]) for i in range(0, len(x), batch)])
