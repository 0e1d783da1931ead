"""Train a thief's copy from (query, answer) pairs: on soft labels or on argmax labels only."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeguard.data import ArraySplit
from edgeguard.models import build_model
from edgeguard.runtime.preprocess import Normaliser
from edgeguard.train.loop import fit


def soft_cross_entropy(x: torch.Tensor, target: torch.Tensor, student: nn.Module, teacher: Optional[nn.Module] = None) -> torch.Tensor:
    """CE against the victim's probability vectors (the Knockoff loss); hard labels are one-hot rows."""
    return -(target * F.log_softmax(student(x), 1)).sum(1).mean()


class Surrogate:
    """A stolen model: the architecture the thief chose, normalised with the thief's own statistics."""

    def __init__(self, model: nn.Module, norm: Normaliser):
        self.model, self.norm = model, norm

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        self.model.eval()
        return torch.softmax(self.model(torch.from_numpy(self.norm(x))), 1).numpy()


def train_surrogate(
    x: np.ndarray, answers: np.ndarray, soft: bool, num_classes: int, arch: str = "small-cnn",
    steps: int = 250, lr: float = 2e-3, seed: int = 0,
) -> Surrogate:  # fmt: skip
    """`soft=False` keeps only each answer's argmax: the thief that needs nothing but labels.

    Training length is a number of optimizer steps, not epochs, so that a copy made from 100
    queries and one made from 1,000 get the same effort and cost the same time.
    """
    targets = answers if soft else np.eye(num_classes, dtype=np.float32)[answers.argmax(1)]
    norm = Normaliser.fitted(x)
    torch.manual_seed(seed)
    model = build_model(arch, x.shape[1:], num_classes)
    batch = max(16, min(64, len(x) // 8))
    epochs = max(1, round(steps * batch / len(x)))
    fit(model, ArraySplit(x, targets.astype(np.float32)), norm, soft_cross_entropy, epochs, lr, batch, seed, shift=0, desc="surrogate")
    return Surrogate(model, norm)
