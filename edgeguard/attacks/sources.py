"""Where a thief's queries come from: the victim's own distribution, or natural photos.

Two thieves, always both (docs/results.md): one holding same-distribution data (the dataset's
attacker pool) and one with only natural images (Knockoff's setting).
"""

from __future__ import annotations

import numpy as np

from edgeguard.data import Dataset
from edgeguard.data.natural import natural_patches
from edgeguard.data.shifts import translate

SOURCES = ("pool", "natural")


def query_set(source: str, data: Dataset, n: int, seed: int) -> np.ndarray:
    """n query images in a random order fixed by the seed; smaller budgets use a prefix.

    A pool smaller than the budget is stretched the way a real thief would: every original once,
    then randomly translated copies (+-2 px).
    """
    rng = np.random.default_rng(seed)
    if source == "natural":
        return natural_patches(n, data.input_shape, seed=1_000 + seed)
    if source != "pool":
        raise ValueError(f"unknown query source '{source}'; choose one of: {', '.join(SOURCES)}")
    pool = data.pool.x[rng.permutation(len(data.pool))]
    extra = n - len(pool)
    if extra <= 0:
        return pool[:n]
    copies = translate(pool[rng.integers(len(pool), size=extra)], rng)
    return np.concatenate([pool, copies])
