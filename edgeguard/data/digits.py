"""The built-in default: scikit-learn's 1797 real handwritten digits, shipped in its wheel.

Upsampled from 8x8 to 28x28 so that MNIST-sized models run on it unchanged. Splits (fixed seed):
60% victim-train, 20% attacker pool, 20% test.
"""

from __future__ import annotations

import numpy as np

from edgeguard.data.base import ArraySplit, Dataset, stratified_split

SPLIT_SEED = 0
SIZE = 28


def load_digits(size: int = SIZE) -> Dataset:
    from skimage.transform import resize
    from sklearn.datasets import load_digits as sk_load_digits

    raw = sk_load_digits()
    images = raw.images.astype(np.float32) / 16.0  # pixel values are 0..16
    x = resize(images, (len(images), size, size), order=1, anti_aliasing=False, preserve_range=True)
    x = np.clip(x, 0.0, 1.0).astype(np.float32)[:, None]
    y = raw.target.astype(np.int64)
    train, pool, test = stratified_split(ArraySplit(x, y), (0.6, 0.2, 0.2), seed=SPLIT_SEED)
    return Dataset("digits", [str(i) for i in range(10)], train, pool, test)
