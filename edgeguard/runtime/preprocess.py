"""Preprocessing as the manifest records it: images in [0, 1] -> the model's normalised inputs (numpy only).

Implemented once, here on the device side, and used by training too: the deployed contract is
whatever this module computes, so training, export checks, serving and thieves' surrogates all
normalise with the same arithmetic (float32 (x - mean) / std per channel).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


class Normaliser:
    """(x - mean) / std per channel of (n, C, H, W) float32 images; built once, called per batch."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, -1, 1, 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float32) - self.mean) / self.std).astype(np.float32, copy=False)

    @classmethod
    def fitted(cls, x: np.ndarray, eps: float = 1e-6) -> "Normaliser":
        """Per-channel statistics of x itself (a thief who has only its own queries)."""
        return cls(x.mean(axis=(0, 2, 3)).tolist(), (x.std(axis=(0, 2, 3)) + eps).tolist())
