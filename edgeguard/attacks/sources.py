"""Where a thief's queries come from: the victim's own distribution, or natural photos.

Two thieves, always both (docs/results.md): one holding same-distribution data (the dataset's
attacker pool) and one with only natural images (Knockoff's setting).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from edgeguard.data import Dataset
from edgeguard.data.natural import natural_patches
from edgeguard.data.shifts import translate

SOURCES = ("pool", "natural")

# The data each attack can start from. Random Knockoff: either. Adaptive Knockoff: natural only, its
# arms being the photo each patch is cut from (the pool is unlabelled to a thief: no arms; and random
# Knockoff already copies the victim from it, docs/results.md). JBDA: its labelled pool seeds.
ATTACK_SOURCES = {"knockoff": SOURCES, "knockoff-adaptive": ("natural",), "jbda": ("pool",)}


def query_set(source: str, data: Dataset, n: int, seed: int) -> np.ndarray:
    """n query images in a random order fixed by the seed; smaller budgets use a prefix.

    A pool smaller than the budget is stretched the way a real thief would: every original once,
    then randomly translated copies (+-2 px).
    """
    rng = np.random.default_rng(seed)
    if source == "natural":
        return _natural(n, data.input_shape, 1_000 + seed).copy()
    if source != "pool":
        raise ValueError(f"unknown query source '{source}'; choose one of: {', '.join(SOURCES)}")
    pool = data.pool.x[rng.permutation(len(data.pool))]
    extra = n - len(pool)
    if extra <= 0:
        return pool[:n]
    copies = translate(pool[rng.integers(len(pool), size=extra)], rng)
    return np.concatenate([pool, copies])


@lru_cache(maxsize=4)
def _natural(n: int, shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """Cutting patches is the slow part of a query set (~3 ms each), and a grid asks the same set once
    per victim and defense: cut once, copied out so no caller can change the cached one."""
    return natural_patches(n, shape, seed=seed)
