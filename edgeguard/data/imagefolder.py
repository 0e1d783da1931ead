"""A user's own images: torchvision's ImageFolder layout, read from disk batch by batch, never held whole.

    DIR/train/<class>/*  and  DIR/val/<class>/* (or DIR/test/)   train is split 80/20 into train and
                                                                  the attacker pool; val is the test split
    DIR/<class>/*                                                 split 60/20/20 like the built-in digits

Files are found recursively under each class folder; any suffix Pillow reads counts. Every file is
decoded once while scanning, so a truncated or unreadable one is skipped up front (one warning
counts them and names the first few) instead of failing a training run in a loader worker. Pixels
come from `ImageSpec.load`, the deployed contract (runtime.preprocess), never from a second decoder.

The image spec (what the manifest records as `preprocessing`): channels 3 unless every image is
grey; the size `--image-size N`, else the median image size when sizes agree (each side within
SIZE_SPREAD of the median) and are at most LARGEST_MEDIAN, else DEFAULT_SIZE (photos of mixed or
camera sizes); images whose aspect ratio differs from the size's are centre-cropped, else
stretched. `Dataset.notes["image_size_rule"]` says which rule chose the size.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from edgeguard.data.base import Dataset, FileSplit, stratified_indices
from edgeguard.errors import EdgeguardError
from edgeguard.runtime.preprocess import ImageSpec

SPLIT_SEED = 0
EVAL_FOLDERS = ("val", "test")
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
DEFAULT_SIZE = 224  # torchvision's classifiers' input: the size for photos of mixed or large sizes
LARGEST_MEDIAN = 256  # a median above this (camera photos) is no model input: DEFAULT_SIZE instead
SIZE_SPREAD = 0.25  # sides within this fraction of the median side count as one size
ASPECT_TOLERANCE = 0.02  # aspect ratios this close to the size's are stretched, not cropped
NAMED_SKIPS = 3  # unreadable files the warning names


def image_files(folder: Path) -> list[Path]:
    """Every file under folder (recursively, sorted) whose suffix Pillow reads: the rest (notes, .DS_Store) is not data."""
    from PIL import Image

    suffixes = set(Image.registered_extensions())
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and p.is_file())


class Scan:
    """The readable image files of some folders: path, label, (H, W) after EXIF rotation, and mode."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.labels: list[int] = []
        self.sizes: list[tuple[int, int]] = []
        self.modes: set[str] = set()
        self.skipped: list[str] = []

    def add(self, files: list[Path], label: int, desc: str) -> int:
        """Decode each file once; returns how many were readable."""
        from PIL import Image

        readable = 0
        for path in tqdm(files, desc=desc, unit="image", leave=False):
            try:
                with Image.open(path) as image:
                    image.load()
                    w, h = image.size
                    rotated = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientations that swap the sides
                    mode = image.mode
            except (OSError, ValueError, SyntaxError, EOFError):  # Pillow's ways of saying unreadable or truncated
                self.skipped.append(str(path))
                continue
            self.paths.append(str(path))
            self.labels.append(label)
            self.sizes.append((w, h) if rotated else (h, w))
            self.modes.add(mode)
            readable += 1
        return readable

    def split(self, spec: ImageSpec, idx: np.ndarray | None = None) -> FileSplit:
        paths, labels = np.array(self.paths, dtype=object), np.array(self.labels, dtype=np.int64)
        return FileSplit(paths, labels, spec) if idx is None else FileSplit(paths[idx], labels[idx], spec)

    def warn_skipped(self) -> None:
        if self.skipped:
            named = ", ".join(self.skipped[:NAMED_SKIPS]) + (f" and {len(self.skipped) - NAMED_SKIPS} more" if len(self.skipped) > NAMED_SKIPS else "")
            warnings.warn(f"skipped {len(self.skipped)} unreadable or truncated image file(s): {named}", stacklevel=3)


def class_folders(folder: Path) -> list[str]:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise EdgeguardError(f"no class folders in '{folder}': expected {folder}/<class>/<image files>")
    return names


def scan_classes(scan: Scan, folder: Path, classes: list[str], names: list[str]) -> None:
    """Add folder/<name>/* for each name (labelled by its index in `classes`); an empty class is an error."""
    for name in names:
        if not scan.add(image_files(folder / name), classes.index(name), desc=f"scan {folder.name}/{name}"):
            raise EdgeguardError(f"class folder '{folder / name}' holds no readable images; add some or remove the folder")


def choose_spec(scan: Scan, image_size: int | None) -> tuple[ImageSpec, str]:
    """The spec of a model for these images, and which rule chose its size (module docstring)."""
    sizes = np.array(scan.sizes, dtype=np.float64)  # (n, 2) H, W
    median = np.median(sizes, axis=0)
    spread = float(np.max(np.abs(sizes - median) / median))
    if image_size is not None:
        size, rule = (image_size, image_size), f"--image-size {image_size}"
    elif spread <= SIZE_SPREAD and median.max() <= LARGEST_MEDIAN:
        size = (int(round(median[0])), int(round(median[1])))
        rule = f"median image size {size[0]}x{size[1]} of {len(sizes)} images"
    else:
        size = (DEFAULT_SIZE, DEFAULT_SIZE)
        low, high = sizes.min(axis=0).astype(int), sizes.max(axis=0).astype(int)
        why = "mixed" if spread > SIZE_SPREAD else f"large (median {median[0]:.0f}x{median[1]:.0f})"
        rule = f"{DEFAULT_SIZE}: image sizes are {why}, from {low[0]}x{low[1]} to {high[0]}x{high[1]}"
    aspect = sizes[:, 1] / sizes[:, 0]
    same_aspect = bool(np.all(np.abs(aspect / (size[1] / size[0]) - 1) <= ASPECT_TOLERANCE))
    channels = 1 if scan.modes <= GREY_MODES else 3
    return ImageSpec(channels, size, "stretch" if same_aspect else "center-crop"), rule


def load_imagefolder(data_dir: str | Path, image_size: int | None = None, spec: ImageSpec | None = None) -> Dataset:
    """The three splits of an ImageFolder tree. `spec` (a trained model's, from its run or manifest)
    decodes the files as that model sees them; without it the spec is chosen from the images."""
    root = Path(data_dir)
    if not root.is_dir():
        raise EdgeguardError(f"image folder '{root}' does not exist; pass --data-dir DIR with DIR/<class>/<images> or DIR/train/<class>/<images>")
    scan = Scan()
    if (root / "train").is_dir():
        classes = class_folders(root / "train")
        evals = [root / name for name in EVAL_FOLDERS if (root / name).is_dir()]
        if not evals:
            raise EdgeguardError(f"'{root}' has train/ but no val/ or test/ beside it; add one, or put the class folders directly in '{root}' to have them split")
        unknown = sorted(set(class_folders(evals[0])) - set(classes))
        if unknown:
            raise EdgeguardError(f"'{evals[0]}' has class folders that '{root / 'train'}' lacks: {', '.join(unknown)}; a model cannot be tested on classes it was never taught")
        scan_classes(scan, root / "train", classes, classes)
        n_train = len(scan.paths)
        scan_classes(scan, evals[0], classes, class_folders(evals[0]))
        labels = np.array(scan.labels[:n_train])
        train_idx, pool_idx = stratified_indices(labels, (0.8, 0.2), seed=SPLIT_SEED)
        test_idx = np.arange(n_train, len(scan.paths))
    else:
        classes = class_folders(root)
        scan_classes(scan, root, classes, classes)
        train_idx, pool_idx, test_idx = stratified_indices(np.array(scan.labels), (0.6, 0.2, 0.2), seed=SPLIT_SEED)
    scan.warn_skipped()
    rule = "the trained model's (run or manifest)"
    if spec is None:
        spec, rule = choose_spec(scan, image_size)
    notes = {"image_size_rule": rule, "images": len(scan.paths), "skipped_files": len(scan.skipped)}
    return Dataset("imagefolder", classes, scan.split(spec, train_idx), scan.split(spec, pool_idx), scan.split(spec, test_idx), spec, notes)


def load_transfer(folder: str | Path, spec: ImageSpec) -> FileSplit:
    """A thief's unlabelled images: every image file under folder, recursively, decoded to the victim's input by its spec."""
    root = Path(folder)
    if not root.is_dir():
        raise EdgeguardError(f"transfer folder '{root}' does not exist; pass --transfer-dir with a folder of images (searched recursively)")
    scan = Scan()
    scan.add(image_files(root), -1, desc="scan transfer images")
    scan.warn_skipped()
    if not scan.paths:
        raise EdgeguardError(f"no readable images under '{root}' (searched recursively for files Pillow reads)")
    return scan.split(spec)
