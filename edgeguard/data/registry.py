"""One table from dataset name to loader."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable

from edgeguard.data.base import Dataset
from edgeguard.data.digits import load_digits
from edgeguard.data.torchvision_sets import TORCHVISION, load_torchvision
from edgeguard.errors import EdgeguardError

DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": lambda data_dir=None, download=False: load_digits(),
    **{name: partial(load_torchvision, name) for name in TORCHVISION},
}


def load_dataset(name: str, data_dir: str | Path = "data", download: bool = False) -> Dataset:
    if name not in DATASETS:
        raise EdgeguardError(f"unknown dataset '{name}'; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name](data_dir=data_dir, download=download)
