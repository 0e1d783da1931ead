"""How a held-out thief (or a tuning thief with `Recipe.own_loop`) trains its copy (`attacks.thieves.Recipe`):
its own loop, so that optimizer, batch, flips, mixup, answer temperature and label smoothing are the
thief's choices, not the tuning thief's (`attacks.surrogate.train_surrogate`, Adam on fixed epochs,
kept as it is for reproducibility).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from edgeguard.attacks.surrogate import Surrogate, soft_cross_entropy, train_surrogate
from edgeguard.attacks.thieves import TUNING, WIDE_CNN, Recipe, Thief
from edgeguard.metrics import agreement
from edgeguard.models import build_model
from edgeguard.runtime.preprocess import Normaliser


def train_copy(thief: Thief, x: np.ndarray, answers: np.ndarray, soft: bool, num_classes: int, seed: int, steps: int) -> Surrogate:
    """A thief's copy; `steps` is the grid's thief budget and applies to the tuning thieves the grid's
    trainer trains (a held-out thief's training length, or an `own_loop` tuning thief's, is its recipe's)."""
    if thief.side == TUNING and not thief.recipe.own_loop:
        if soft and thief.recipe.temperature != 1:  # the tempered tuning thief; the others' targets stay bit-identical
            answers = targets(answers, soft, thief.recipe)
        return train_surrogate(x, answers, soft, num_classes, arch=thief.recipe.arch, steps=steps, lr=thief.recipe.lr, seed=seed)
    return train_thief(thief.recipe, x, answers, soft, num_classes, seed)


def thief_model(arch: str, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """A deployable architecture (edgeguard.models) or the wider CNN a thief with more compute picks."""
    if arch != WIDE_CNN:
        return build_model(arch, input_shape, num_classes)
    channels, side, _ = input_shape
    layers: list[nn.Module] = []
    for cin, cout in ((channels, 32), (32, 64), (64, 128)):
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Dropout(0.3), nn.Linear(128 * (side // 8) ** 2, 256), nn.ReLU(), nn.Linear(256, num_classes))


def targets(answers: np.ndarray, soft: bool, recipe: Recipe) -> np.ndarray:
    """What the thief trains towards: answers (or their one-hot argmax), tempered, then smoothed."""
    classes = answers.shape[1]
    if not soft:
        t = np.eye(classes)[answers.argmax(1)]
    else:
        t = np.clip(answers, 1e-12, 1.0) ** (1.0 / recipe.temperature)
        t = t / t.sum(1, keepdims=True)
    return ((1 - recipe.smoothing) * t + recipe.smoothing / classes).astype(np.float32)


def train_thief(recipe: Recipe, x: np.ndarray, answers: np.ndarray, soft: bool, num_classes: int, seed: int) -> Surrogate:
    """A held-out thief's copy. The careful thief trains each candidate on (1 - validation) of its
    answers, keeps the one that agrees best with the held-back answers, and retrains it on all."""
    if not recipe.candidates:
        return _fit(recipe, x, answers, soft, num_classes, seed)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = max(1, int(len(x) * recipe.validation))
    val, train = order[:cut], order[cut:]
    scores = {arch: agreement(answers[val], _fit(replace(recipe, arch=arch), x[train], answers[train], soft, num_classes, seed).predict(x[val])) for arch in recipe.candidates}
    return _fit(replace(recipe, arch=max(scores, key=scores.__getitem__)), x, answers, soft, num_classes, seed)


def _fit(recipe: Recipe, x: np.ndarray, answers: np.ndarray, soft: bool, num_classes: int, seed: int) -> Surrogate:
    """`recipe.steps` minibatch steps (batches drawn with replacement), cosine-annealed learning rate."""
    norm = Normaliser.fitted(x)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = thief_model(recipe.arch, x.shape[1:], num_classes)
    xs, ys = torch.from_numpy(norm(x)), torch.from_numpy(targets(answers, soft, recipe))
    if recipe.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, recipe.steps)
    batch = min(recipe.batch, len(x))
    mix = np.random.default_rng(seed).beta(recipe.mixup, recipe.mixup, size=recipe.steps) if recipe.mixup > 0 else None
    model.train()
    for step in range(recipe.steps):
        idx = torch.randint(len(x), (batch,), generator=gen)
        xb, yb = xs[idx], ys[idx]
        if recipe.flip:
            flip = torch.rand(batch, generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        if mix is not None:
            a = float(mix[step])
            perm = torch.randperm(batch, generator=gen)
            xb, yb = a * xb + (1 - a) * xb[perm], a * yb + (1 - a) * yb[perm]
        loss = soft_cross_entropy(xb, yb, model)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return Surrogate(model, norm)
