"""Real datasets through torchvision: they download, so they are never the default here.

Each is read into memory once; the official training set is split (fixed seed) into victim-train
(80%) and attacker pool (20%), the official test set is the test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeguard.data.base import ArraySplit, Dataset, stratified_split
from edgeguard.errors import EdgeguardError

SPLIT_SEED = 0

# name -> (torchvision class name, how its constructor picks train/test)
TORCHVISION = {
    "mnist": ("MNIST", "train"),
    "fashion-mnist": ("FashionMNIST", "train"),
    "kmnist": ("KMNIST", "train"),
    "cifar10": ("CIFAR10", "train"),
    "cifar100": ("CIFAR100", "train"),
    "svhn": ("SVHN", "split"),
}


def _to_split(ds: Any) -> ArraySplit:
    data = np.asarray(ds.data)  # a torch tensor (the MNISTs) or an array
    if data.ndim == 3:  # (n, H, W) grayscale
        data = data[:, None]
    elif data.shape[-1] == 3:  # (n, H, W, 3) -> (n, 3, H, W); SVHN is already channels-first
        data = data.transpose(0, 3, 1, 2)
    y = np.asarray(ds.targets if hasattr(ds, "targets") else ds.labels, dtype=np.int64)  # SVHN calls them labels
    return ArraySplit(np.ascontiguousarray(data, dtype=np.float32) / 255.0, y)


def _open(cls: Callable, root: Path, which: str, train: bool, download: bool) -> Any:
    kw = {"train": train} if which == "train" else {"split": "train" if train else "test"}
    try:
        return cls(root=str(root), download=download, **kw)
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted."
        raise EdgeguardError(
            f"dataset not found under '{root}' ({e}); pass --download to fetch it, or "
            f"--data-dir pointing at a folder that holds it"
        ) from e
    except OSError as e:  # URLError and friends: no network
        raise EdgeguardError(
            f"could not download the dataset into '{root}' ({e}); this machine may be offline: "
            f"copy the files there by hand, or use the built-in 'digits'"
        ) from e


def load_torchvision(name: str, data_dir: str | Path = "data", download: bool = False) -> Dataset:
    import torchvision.datasets as tvd

    cls_name, which = TORCHVISION[name]
    cls = getattr(tvd, cls_name)
    root = Path(data_dir)
    train_ds = _open(cls, root, which, True, download)
    test = _to_split(_open(cls, root, which, False, download))
    full = _to_split(train_ds)
    train, pool = stratified_split(full, (0.8, 0.2), seed=SPLIT_SEED)
    classes = [str(c) for c in getattr(train_ds, "classes", range(int(full.y.max()) + 1))]
    return Dataset(name, classes, train, pool, test)
