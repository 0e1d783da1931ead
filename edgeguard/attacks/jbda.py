"""The query stream of a JBDA thief (Papernot et al., "Practical Black-Box Attacks", AsiaCCS 2017).

Jacobian-based dataset augmentation: the thief starts from a few labelled seed images and, each
round, queries x + lam * sign(dF_y(x)/dx) for every x it holds, y being the victim's label for x, so
each round doubles its set with points one small fixed step from earlier ones. That stream is what
the serving monitor must notice (edgeguard.monitor.prada).

Two uses, one seed set and one augmentation step:
- `jbda_stream` builds the query stream only, for detection: `gradient_sign` estimates the gradient
  of the model it is given by finite differences (numpy only, no torch), so the steps point where
  the victim's own logit grows: at least as informed as a substitute's. The finite-difference
  probes stand in for the substitute's backward pass; they are not part of the stream. The step h
  equals lam: an int8 model's logits are flat under much smaller changes.
- `jbda_theft` is the real attack: each round it queries the new points (counted), retrains its
  substitute on everything answered so far, and steps along the substitute's own gradient (torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from edgeguard.attacks.knockoff import ask
from edgeguard.attacks.victim import Victim
from edgeguard.data import Dataset

if TYPE_CHECKING:  # the stream side stays torch-free; only jbda_theft needs torch
    from edgeguard.attacks.surrogate import Surrogate

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


def seed_set(data: Dataset, seed: int, seeds_per_class: int = SEEDS_PER_CLASS) -> np.ndarray:
    """The thief's few labelled seeds: seeds_per_class attacker-pool images of each class, shuffled."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(data.pool.y == c), seeds_per_class, replace=False) for c in range(len(data.classes))]
    return data.pool.images(rng.permutation(np.concatenate(picks)))


def jbda_stream(logits: Logits, data: Dataset, n: int, seed: int, lam: float = LAMBDA, seeds_per_class: int = SEEDS_PER_CLASS) -> np.ndarray:
    """n queries: seeds_per_class pool images of each class (shuffled), then augmentation rounds.

    Each round's children are queried in the order of their parents; the stream stops at n, so only
    the gradients it needs are computed.
    """
    held = seed_set(data, seed, seeds_per_class)
    stream = held
    while len(stream) < n:
        parents = held[: n - len(stream)]
        labels = logits(parents).argmax(axis=1)
        steps = np.stack([gradient_sign(logits, x, int(c), lam) for x, c in zip(parents, labels)])
        children = np.clip(parents + lam * steps, 0.0, 1.0).astype(np.float32)
        stream = np.concatenate([stream, children])
        held = np.concatenate([held, children])
    return stream[:n]


def jbda_theft(victim: Victim, data: Dataset, budget: int, soft: bool, seed: int, steps: int = 250, lam: float = LAMBDA, arch: str = "small-cnn") -> "Surrogate":
    """Papernot et al.'s substitute training, capped at `budget` answered queries.

    S_0 = the seed set; each round queries the points not yet answered, trains the substitute on all
    answers so far, then S_{r+1} = S_r + {x + lam * sign(d F_y(x) / dx)} with F the substitute and
    y the victim's label for x. The last round queries only what the budget still allows.
    """
    import torch

    from edgeguard.attacks.surrogate import train_surrogate

    xs, answers = [], []
    new = seed_set(data, seed)
    while True:
        new = new[: budget - sum(len(a) for a in answers)]
        xs.append(new)
        answers.append(ask(victim, new))
        x, y = np.concatenate(xs), np.concatenate(answers)
        substitute = train_surrogate(x, y, soft, y.shape[1], arch=arch, steps=steps, seed=seed)
        if len(x) >= budget:
            return substitute
        inputs = torch.from_numpy(x).requires_grad_(True)
        norm = substitute.norm  # the same arithmetic as runtime.preprocess, on a tensor that carries gradients
        logits = substitute.model.eval()((inputs - torch.from_numpy(norm.mean)) / torch.from_numpy(norm.std))
        logits.gather(1, torch.from_numpy(y.argmax(1))[:, None]).sum().backward()
        new = np.clip(x + lam * np.sign(inputs.grad.numpy()), 0.0, 1.0).astype(np.float32)
