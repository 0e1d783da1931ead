"""Where a thief's queries come from: the victim's own distribution, natural photos, or the thief's own images.

Two thieves, always both (docs/results.md): one holding same-distribution data (the dataset's
attacker pool) and one with only natural images (Knockoff's setting). A thief with a folder of its
own images (`--transfer-dir`, `Dataset.transfer`: CIFAR-100 against a CIFAR-10 victim, say) is the
third, `transfer`.
"""

from __future__ import annotations

import numpy as np

from edgeguard.data import Dataset
from edgeguard.data.natural import natural_patches
from edgeguard.data.shifts import translate
from edgeguard.errors import EdgeguardError

SOURCES = ("pool", "natural", "transfer")

# The data each attack can start from. Random Knockoff: either. Adaptive Knockoff: natural only, its
# arms being the photo each patch is cut from (the pool is unlabelled to a thief: no arms; and random
# Knockoff already copies the victim from it, docs/results.md). JBDA: its labelled pool seeds.
ATTACK_SOURCES = {"knockoff": SOURCES, "knockoff-adaptive": ("natural",), "jbda": ("pool",)}


def query_set(source: str, data: Dataset, n: int, seed: int) -> np.ndarray:
    """n query images in a random order fixed by the seed; smaller budgets use a prefix.

    A pool (or transfer folder) smaller than the budget is stretched the way a real thief would:
    every original once, then randomly translated copies (+-2 px). Only the n images asked for are
    read from a split on disk.
    """
    rng = np.random.default_rng(seed)
    if source == "natural":
        return natural_patches(n, data.input_shape, seed=1_000 + seed)  # cut once per process (data.natural)
    if source not in SOURCES:
        raise ValueError(f"unknown query source '{source}'; choose one of: {', '.join(SOURCES)}")
    split = data.pool if source == "pool" else data.transfer
    if split is None:
        raise EdgeguardError("the 'transfer' query source needs the thief's images: pass --transfer-dir")
    order = rng.permutation(len(split))
    extra = n - len(split)
    if extra <= 0:
        return split.images(order[:n])
    copies = translate(split.images(order[rng.integers(len(split), size=extra)]), rng)
    return np.concatenate([split.images(order), copies])

