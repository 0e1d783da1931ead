"""The shapes every dataset loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Split:
    x: np.ndarray  # (n, C, H, W) float32 in [0, 1]
    y: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Dataset:
    name: str
    classes: list[str]
    train: Split
    pool: Split
    test: Split

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]

    @property
    def mean(self) -> list[float]:
        return self.train.x.mean(axis=(0, 2, 3)).astype(float).tolist()

    @property
    def std(self) -> list[float]:
        return self.train.x.std(axis=(0, 2, 3)).astype(float).tolist()


def stratified_split(
    x: np.ndarray, y: np.ndarray, fractions: tuple[float, ...], seed: int
) -> list[Split]:
    """Split (x, y) into len(fractions) parts with the same class balance in each.

    The seed is the dataset's own, not the training seed: the test split must not move when a user
    retrains with another seed, or accuracies across seeds would not be comparable.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    bounds = np.cumsum((0.0,) + tuple(fractions))
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        cuts = np.round(bounds * len(idx)).astype(int)
        for i in range(len(fractions)):
            parts[i].append(idx[cuts[i] : cuts[i + 1]])
    out = []
    for p in parts:
        idx = rng.permutation(np.concatenate(p))
        out.append(Split(x[idx], y[idx]))
    return out
