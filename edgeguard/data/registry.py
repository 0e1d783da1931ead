"""One table from dataset name to loader, and the one way every consumer loads a dataset."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable

from edgeguard.data.base import Dataset, Split
from edgeguard.data.digits import load_digits
from edgeguard.data.imagefolder import load_imagefolder, load_transfer
from edgeguard.data.torchvision_sets import TORCHVISION, load_torchvision
from edgeguard.errors import EdgeguardError
from edgeguard.manifest import Manifest
from edgeguard.runtime.preprocess import ImageSpec

# name -> loader(data_dir, download, image_size, spec); only image folders have a size to choose
DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": lambda data_dir=None, download=False, image_size=None, spec=None: load_digits(),
    **{name: partial(load_torchvision, name) for name in TORCHVISION},
    "imagefolder": lambda data_dir, download=False, image_size=None, spec=None: load_imagefolder(data_dir, image_size, spec),
}
SIZED = ("imagefolder",)  # datasets of files: --image-size applies


def load_dataset(
    name: str, data_dir: str | Path = "data", download: bool = False, image_size: int | None = None,
    spec: ImageSpec | None = None, transfer_dir: str | Path | None = None, transfer_dataset: str | None = None,
) -> Dataset:  # fmt: skip
    """`spec` (a trained model's) decodes image files as that model sees them; `transfer_dir` adds a
    thief's own images (`Dataset.transfer`), decoded to the same input: any folder of image files,
    or with `transfer_dataset` a dataset of this table kept there (its train split, labels unused:
    CIFAR-100 against a CIFAR-10 victim)."""
    if name not in DATASETS:
        raise EdgeguardError(f"unknown dataset '{name}'; choose one of: {', '.join(DATASETS)}")
    if image_size is not None and name not in SIZED:
        raise EdgeguardError(f"--image-size applies to --dataset {' | '.join(SIZED)} only; '{name}' has a fixed input size")
    if name in SIZED:
        data = DATASETS[name](data_dir=data_dir, image_size=image_size, spec=spec)
    else:
        data = DATASETS[name](data_dir=data_dir, download=download)
    if transfer_dir is not None:
        data.transfer = _transfer(transfer_dir, transfer_dataset, spec or ImageSpec.from_manifest(data.preprocessing, data.input_shape))
    return data


def _transfer(folder: str | Path, dataset: str | None, spec: ImageSpec) -> Split:
    if dataset is None:
        return load_transfer(folder, spec)
    images = load_dataset(dataset, folder, spec=spec).train
    if images.shape != (spec.channels, *spec.size):
        raise EdgeguardError(
            f"the {dataset} images are {images.shape} (C, H, W) but the victim takes {(spec.channels, *spec.size)}; "
            f"save them as image files and pass that folder as --transfer-dir without --transfer-dataset"
        )
    return images


def victim_data(manifest: Manifest, transfer_dir: str | Path | None = None, transfer_dataset: str | None = None) -> Dataset:
    """The dataset an exported model was trained on, decoded by its manifest's preprocessing, from
    where its run read it (`extra["data_dir"]`, written by export)."""
    spec = ImageSpec.from_manifest(manifest.preprocessing, manifest.input_shape)
    return load_dataset(manifest.dataset, manifest.extra.get("data_dir", "data"), spec=spec, transfer_dir=transfer_dir, transfer_dataset=transfer_dataset)
