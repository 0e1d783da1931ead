"""How out of distribution a query looks to the deployed model itself, and the share of such queries per key.

The score is the energy -logsumexp(logits) (Liu et al., NeurIPS 2020, temperature 1): higher means
less like the training data. Energy rather than the max-softmax probability because the int8 model's
softmax saturates: most queries, honest or not, get a top probability of 0.999+, while the logits'
size still tells them apart. On the default victim, at the same honest false-positive rate, energy
separated a Knockoff thief's natural patches from honest digits better than max-softmax did (both
measured, docs/detection.md). A single score says little (honest users send odd images too); a
Knockoff thief sends a steady share of odd ones, so the monitor watches that share over a window.
"""

from __future__ import annotations

import numpy as np


def energy(logits: np.ndarray) -> np.ndarray:
    """(n, classes) logits -> (n,) energy scores, float64."""
    return -np.logaddexp.reduce(np.asarray(logits, np.float64), axis=1)  # stable; one numpy call per batch


class OodShare:
    """Which of a key's last `window` queries scored out of distribution, and how many did."""

    def __init__(self, window: int):
        self.recent = [False] * window
        self.seen = 0
        self.count = 0

    def add(self, ood: bool) -> int:
        """Record one query; returns how many of the last `window` (this one included) were OOD."""
        i = self.seen % len(self.recent)
        self.count += ood - self.recent[i]
        self.recent[i] = ood
        self.seen += 1
        return self.count
