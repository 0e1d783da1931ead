"""How out of distribution a query looks to the deployed model itself, and the share of such queries per key.

The score is the energy -logsumexp(logits) (Liu et al., NeurIPS 2020, temperature 1): higher means
less like the training data. Energy rather than the max-softmax probability because the int8 model's
softmax saturates: most queries, honest or not, get a top probability of 0.999+, while the logits'
size still tells them apart. On the default victim, at the same honest false-positive rate, energy
separated a Knockoff thief's natural patches from honest digits better than max-softmax did (both
measured, docs/detection.md). A single score says little (honest users send odd images too); a
Knockoff thief sends a steady share of odd ones, so the monitor watches that share over a window.

A model trained with DivQAT's `signature` probe target answers what looks like its probes with one
fixed soft answer, `signature(classes)`, and those answers are confident enough to pass as honest
by energy alone. So the monitor also scores how close an answer is to the signature
(KL(signature || answer)): honest inputs get near one-hot answers, far from it (docs/divqat.md).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

# the signature's default probability of class 0, the rest spread evenly: chosen on the tuning side
# (docs/divqat.md); at 0.5 the small differences around the soft answer taught thieves more than plain QAT
SIGNATURE_MASS = 0.98
TARGET_CLASS = 0  # the class DivQAT's teacher-free probe targets put their mass on: the signature's top class, the fixed target's class


def energy(logits: np.ndarray) -> np.ndarray:
    """(n, classes) logits -> (n,) energy scores, float64."""
    return -np.logaddexp.reduce(np.asarray(logits, np.float64), axis=1)  # stable; one numpy call per batch


def signature(classes: int, mass: float = SIGNATURE_MASS) -> np.ndarray:
    """The fixed soft answer DivQAT's `signature` target trains off-manifold probes to give: it
    carries nothing about the input, and honest inputs, answered near one-hot, never get it."""
    q = np.full(classes, (1 - mass) / (classes - 1))
    q[TARGET_CLASS] = mass
    return q


def signature_distance(logits: np.ndarray, mass: float = SIGNATURE_MASS) -> np.ndarray:
    """(n, classes) logits -> (n,) KL(signature || softmax(logits)), float64: small = the signature."""
    z = np.asarray(logits, np.float64)
    log_p = z - np.logaddexp.reduce(z, axis=1, keepdims=True)
    q = signature(z.shape[1], mass)
    return (q * (np.log(q) - log_p)).sum(axis=1)


def out_of_distribution(logits: np.ndarray, energy_threshold: float, signature: Optional[tuple[float, float]] = None) -> np.ndarray:
    """(n,) bool: energy above its threshold, or, for a `signature` model (signature = (mass,
    threshold)), an answer closer to the signature than the threshold."""
    ood = energy(logits) > energy_threshold
    if signature is not None:
        mass, threshold = signature
        ood |= signature_distance(logits, mass) < threshold
    return ood


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
