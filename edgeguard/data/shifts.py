"""Benign distribution shifts of honest inputs: what an honest user's camera might do.

Used to check that a defended model does not mislabel slightly-off honest inputs (the unmeasured
risk of training a model to answer off-manifold inputs with junk).
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def gaussian_noise(x: np.ndarray, rng: np.random.Generator, sigma: float = 0.1) -> np.ndarray:
    return np.clip(x + rng.normal(0, sigma, x.shape), 0, 1).astype(np.float32)


def translate(x: np.ndarray, rng: np.random.Generator, pixels: int = 2) -> np.ndarray:
    """Each image moved by up to +-pixels in each direction, the uncovered edge zero."""
    h, w = x.shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), (pixels, pixels), (pixels, pixels)))
    out = np.empty_like(x)
    for i, (dy, dx) in enumerate(rng.integers(-pixels, pixels + 1, (len(x), 2))):
        out[i] = padded[i, :, pixels - dy : pixels - dy + h, pixels - dx : pixels - dx + w]
    return out


def rotate(x: np.ndarray, rng: np.random.Generator, degrees: float = 10.0) -> np.ndarray:
    from scipy.ndimage import rotate as nd_rotate

    angles = rng.uniform(-degrees, degrees, len(x))
    return np.stack([nd_rotate(img, a, axes=(1, 2), reshape=False, order=1, mode="constant") for img, a in zip(x, angles)]).astype(np.float32)


SHIFTS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "noise_0.1": gaussian_noise,
    "translate_2px": translate,
    "rotate_10deg": rotate,
}


def shifted(x: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Each benign shift of x, seeded."""
    return {name: fn(x, np.random.default_rng(seed)) for name, fn in SHIFTS.items()}


def random_shifts(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image left as it is or given one benign shift, chosen uniformly: an honest user's mixed stream.

    Used to calibrate the serving monitor's thresholds and to check its false flags on honest streams.
    """
    out = x.copy()
    which = rng.integers(len(SHIFTS) + 1, size=len(x))  # 0: unchanged
    for i, fn in enumerate(SHIFTS.values(), start=1):
        chosen = which == i
        if chosen.any():
            out[chosen] = fn(x[chosen], rng)
    return out
