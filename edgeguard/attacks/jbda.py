"""The query stream of a JBDA thief (Papernot et al., "Practical Black-Box Attacks", AsiaCCS 2017).

Jacobian-based dataset augmentation: the thief starts from a few labelled seed images and, each
round, queries x + lam * sign(dF_y(x)/dx) for every x it holds, y being the victim's label for x, so
each round doubles its set with points one small fixed step from earlier ones. That stream is what
the serving monitor must notice (edgeguard.monitor.prada); training the substitute is not needed
for it, so this module only builds the queries.

The real attack takes the gradient of its substitute, retrained each round. Here `gradient_sign`
estimates the gradient of the model it is given by finite differences (numpy only, no torch), so the
steps point where the victim's own logit grows: at least as informed as a substitute's. The
finite-difference probes stand in for the substitute's backward pass; they are not part of the
stream. The step h equals lam: an int8 model's logits are flat under much smaller changes.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edgeguard.data import Dataset

LAMBDA = 0.1  # Papernot et al.'s step for MNIST
SEEDS_PER_CLASS = 10

Logits = Callable[[np.ndarray], np.ndarray]  # (n, C, H, W) in [0, 1] -> (n, classes)


def gradient_sign(logits: Logits, x: np.ndarray, label: int, h: float = LAMBDA) -> np.ndarray:
    """sign(d logit_label / dx) for one image (C, H, W): a forward difference per pixel (backward
    where x + h would leave [0, 1]), all pixels probed in one batch."""
    flat = x.ravel()
    step = np.where(flat + h <= 1.0, h, -h).astype(np.float32)
    probes = np.repeat(flat[None], flat.size, axis=0)
    probes[np.arange(flat.size), np.arange(flat.size)] += step
    z = logits(np.concatenate([x[None], probes.reshape(-1, *x.shape)]))[:, label]
    return (np.sign(z[1:] - z[0]) * np.sign(step)).reshape(x.shape).astype(np.float32)


def jbda_stream(logits: Logits, data: Dataset, n: int, seed: int, lam: float = LAMBDA, seeds_per_class: int = SEEDS_PER_CLASS) -> np.ndarray:
    """n queries: seeds_per_class pool images of each class (shuffled), then augmentation rounds.

    Each round's children are queried in the order of their parents; the stream stops at n, so only
    the gradients it needs are computed.
    """
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(data.pool.y == c), seeds_per_class, replace=False) for c in range(len(data.classes))]
    held = data.pool.x[rng.permutation(np.concatenate(picks))]
    stream = held
    while len(stream) < n:
        parents = held[: n - len(stream)]
        labels = logits(parents).argmax(axis=1)
        steps = np.stack([gradient_sign(logits, x, int(c), lam) for x, c in zip(parents, labels)])
        children = np.clip(parents + lam * steps, 0.0, 1.0).astype(np.float32)
        stream = np.concatenate([stream, children])
        held = np.concatenate([held, children])
    return stream[:n]
