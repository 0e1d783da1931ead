"""The shapes every dataset loader returns: splits that are either arrays in memory or image files read on demand.

Every consumer reads a split through the same few calls: `y` (labels, always in memory), `images(idx)`
(a batch), `batches()` (all of it, a batch at a time) and `sample(n, seed)` (a bounded subset in
memory). Only the built-in sets small enough to hold (digits, the torchvision sets) are arrays; a
folder of images (`imagefolder`) stays on disk, so nothing downstream holds a whole dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Iterator

import numpy as np
from tqdm.auto import tqdm

from edgeguard.runtime.preprocess import ImageSpec

BATCH_BYTES = 32 << 20  # a sequential pass (evaluation, statistics) holds this much float32 input at a time


class Split:
    """Labels `y` (n,) in memory; images (n, C, H, W) float32 in [0, 1] through `images`."""

    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    @property
    def shape(self) -> tuple[int, int, int]:
        raise NotImplementedError

    def images(self, idx: np.ndarray | slice) -> np.ndarray:
        raise NotImplementedError

    def subset(self, idx: np.ndarray) -> "Split":
        raise NotImplementedError

    @property
    def batch_size(self) -> int:
        """Images per batch of a sequential pass: BATCH_BYTES of input (digits' test split is one batch, as it was whole)."""
        return max(1, BATCH_BYTES // (4 * int(np.prod(self.shape))))

    def batches(self, desc: str | None = None) -> Iterator[np.ndarray]:
        """Every image in order, `batch_size` at a time."""
        starts = range(0, len(self), self.batch_size)
        for i in tqdm(starts, desc=desc, unit="batch", leave=False) if desc else starts:
            yield self.images(slice(i, i + self.batch_size))

    def apply(self, fn: Callable[[np.ndarray], np.ndarray], desc: str | None = None) -> np.ndarray:
        """fn's outputs (e.g. probabilities) for every image, in order, computed batch by batch."""
        return np.concatenate([fn(x) for x in self.batches(desc)])

    def sample(self, n: int, seed: int = 0) -> "ArraySplit":
        """At most n images in memory: all of them, in order, when the split is that small (so a
        small built-in set gives every consumer exactly what it gave before), else a seeded subset
        in split order (files read in order)."""
        if n >= len(self):
            return ArraySplit(self.images(slice(None)), self.y)
        idx = np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        return ArraySplit(self.images(idx), self.y[idx])

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std over every pixel, streamed (float64 sums, one batch in memory)."""
        total = squares = 0.0
        pixels = 0
        for x in self.batches(desc="mean/std"):
            x = x.astype(np.float64)
            total = total + x.sum(axis=(0, 2, 3))
            squares = squares + (x * x).sum(axis=(0, 2, 3))
            pixels += x.shape[0] * x.shape[2] * x.shape[3]
        mean = total / pixels
        return mean.tolist(), np.sqrt(np.maximum(squares / pixels - mean * mean, 0.0)).tolist()


@dataclass
class ArraySplit(Split):
    x: np.ndarray  # (n, C, H, W) float32 in [0, 1]
    y: np.ndarray  # (n,) int64, or the targets a surrogate trains on

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    def images(self, idx: np.ndarray | slice) -> np.ndarray:
        return self.x[idx]

    def subset(self, idx: np.ndarray) -> "ArraySplit":
        return ArraySplit(self.x[idx], self.y[idx])

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Exactly as before splits could stream (float32 over the whole array): built-in runs keep their numbers."""
        return self.x.mean(axis=(0, 2, 3)).astype(float).tolist(), self.x.std(axis=(0, 2, 3)).astype(float).tolist()


@dataclass
class FileSplit(Split):
    """Image files decoded by `spec` (runtime.preprocess, the deployed contract) when asked for."""

    paths: np.ndarray  # (n,) str
    y: np.ndarray  # (n,) int64; -1 for a thief's unlabelled images
    spec: ImageSpec

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.spec.channels, *self.spec.size)

    def images(self, idx: np.ndarray | slice) -> np.ndarray:
        paths = self.paths[idx]
        out = np.empty((len(paths), *self.shape), np.float32)
        for i, path in enumerate(paths):
            out[i] = self.spec.load(path)
        return out

    def subset(self, idx: np.ndarray) -> "FileSplit":
        return FileSplit(self.paths[idx], self.y[idx], self.spec)


@dataclass
class Dataset:
    name: str
    classes: list[str]
    train: Split
    pool: Split
    test: Split
    spec: ImageSpec | None = None  # how files are decoded; None: arrays that are already the model's input
    notes: dict[str, Any] = field(default_factory=dict)  # how the loader chose what it chose (image size, skipped files)
    transfer: Split | None = None  # a thief's own unlabelled images (`attack --transfer-dir`)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.train.shape

    @property
    def preprocessing(self) -> dict[str, Any]:
        """The manifest's record of how an image file becomes this dataset's input."""
        spec = self.spec or ImageSpec(self.input_shape[0], self.input_shape[1:])
        return spec.to_manifest()

    @cached_property
    def _stats(self) -> tuple[list[float], list[float]]:
        return self.train.channel_stats()

    @property
    def mean(self) -> list[float]:
        return self._stats[0]

    @property
    def std(self) -> list[float]:
        return self._stats[1]


def stratified_indices(y: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Indices of len(fractions) parts of y with the same class balance in each.

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
    return [rng.permutation(np.concatenate(p)) for p in parts]


def stratified_split(split: Split, fractions: tuple[float, ...], seed: int) -> list[Split]:
    return [split.subset(idx) for idx in stratified_indices(split.y, fractions, seed)]

