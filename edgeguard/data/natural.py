"""Natural-image transfer sets: what a Knockoff-style thief queries with.

Patches of the photographs that ship inside installed wheels (scikit-learn's two sample images and
scikit-image's bundled photos), randomly cropped, flipped, resized and, for one-channel victims,
turned to grayscale. They are from another distribution than any victim's data on purpose: that is
the setting a real thief is in. Images that scikit-image would download at run time are not used.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np

# scikit-image photographs bundled in its wheel (synthetic images such as checkerboard are left out)
SKIMAGE_PHOTOS = (
    "astronaut", "brick", "camera", "cat", "cell", "clock", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket", "text",
)  # fmt: skip


def rgb01(image: np.ndarray) -> np.ndarray:
    """An image as float32 RGB (H, W, 3) in [0, 1]: 8-bit values scaled, grey repeated, alpha dropped."""
    img = np.asarray(image, dtype=np.float32)
    img = img / 255.0 if img.max() > 1.0 else img
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]


SKLEARN_PHOTOS = ("china", "flower")  # scikit-learn's two sample images


def bundled_photo(name: str) -> np.ndarray:
    """One photo shipped inside an installed wheel, by name, as its package gives it (uint8; grey or RGB)."""
    if name in SKLEARN_PHOTOS:
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    photo = getattr(skimage.data, name)()
    return photo[0] if isinstance(photo, tuple) else photo  # stereo_motorcycle: (left, right, disparity)


@lru_cache(maxsize=1)
def photos() -> tuple[np.ndarray, ...]:
    """All bundled photos as float32 RGB arrays in [0, 1], (H, W, 3)."""
    return tuple(rgb01(bundled_photo(name)) for name in (*SKLEARN_PHOTOS, *SKIMAGE_PHOTOS))


CACHED_BYTES = 64 * 2**20  # largest patch set kept for repeated calls (1,000 RGB patches of 64x64 are 49 MB)


def natural_patches(n: int, shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """n random patches shaped (C, H, W), float32 in [0, 1]; deterministic for a seed.

    A set is cut once per process and copied on later calls: export verifies every file on the same
    sets (resizing 1,500 patches is most of a small model's export), and a copy keeps callers free
    to write into theirs."""
    if n * int(np.prod(shape)) * 4 > CACHED_BYTES:
        return _draw(n, tuple(shape), seed)
    return _cached_draw(n, tuple(shape), seed).copy()


def _draw(n: int, shape: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return _cut(n, shape, rng, lambda i: int(rng.integers(len(photos()))))


_cached_draw = lru_cache(maxsize=4)(_draw)


def photo_patches(photo_ids: np.ndarray, shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """One random patch of each listed photo (indices into `photos()`), for a thief that picks which
    photo each query comes from (adaptive Knockoff, `edgeguard.attacks.adaptive`)."""
    return _cut(len(photo_ids), shape, rng, lambda i: int(photo_ids[i]))


def square_patch(img: np.ndarray, side: int, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A side x side crop of img (H, W, 3) at a random place, mirrored half the time, resized to size
    (H, W) (bilinear, antialiased): how every transfer set is cut from its images."""
    from skimage.transform import resize

    top, left = rng.integers(img.shape[0] - side + 1), rng.integers(img.shape[1] - side + 1)
    patch = img[top : top + side, left : left + side]
    return resize(patch[:, ::-1] if rng.random() < 0.5 else patch, size, order=1, anti_aliasing=True)


def _cut(n: int, shape: tuple[int, int, int], rng: np.random.Generator, pick: Callable[[int], int]) -> np.ndarray:
    """n patches; `pick(i)` names patch i's photo and is called just before its crop is drawn, the
    order of draws every stored natural-patch result depends on."""
    channels, h, w = shape
    imgs = photos()
    out = np.empty((n, channels, h, w), dtype=np.float32)
    for i in range(n):
        img = imgs[pick(i)]
        half = min(img.shape[:2]) // 2  # crops up to half the photo; patches larger than that crop (and shrink) from it
        side = int(rng.integers(min(max(h, 24), half), half + 1))
        patch = square_patch(img, side, (h, w), rng)
        if channels == 1:
            patch = patch @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            patch = patch[..., None]
        out[i] = patch.transpose(2, 0, 1)
    return out
