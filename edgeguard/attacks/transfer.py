"""Transfer sets of the held-out thieves: images no DivQAT default was ever chosen on.

The tuning side's transfer set is `edgeguard.data.natural` (19 bundled photos, crops of 24 px up to
half the short side, ITU-R 601 luma). Every held-out transfer set is built here from other images,
so that a number measured with them says how a defense does against data it never saw:

- `other-photos`: photographs that also ship in installed wheels but are *not* among the tuning
  side's 19 (`HELDOUT_PHOTOS`; `tests/test_thieves.py` checks the two lists are disjoint);
- `faces`: scikit-image's 200 LFW face crops (25 x 25), a thief with a face data set;
- `terrain`: matplotlib's two elevation maps, natural textures of another kind than brick/grass;
- `fields`: synthetic 1/f noise images, a *control*: DivQAT's default probes are such fields, so
  a thief who queries them is the one DivQAT was trained against, not a held-out one in spirit.

Two synthetic kinds belong to the *tuning* side (issue 15: a wider tuning side that may inform a
default, disjoint from every held-out set): `probes`, DivQAT's own probe generator
(`train.losses.random_fields`, octave sums, not the held-out control's Fourier spectra) mapped
back to pixels, and `textures`, gratings (sums of oriented sine or square waves) and dead-leaves
images (overlapping discs of random grey, power-law radii) — drawn, not cut from any image.

Crop scale (a fraction of the short side) and the colour-to-grey conversion are the thief's too.
Every image is drawn from a generator seeded per query index, so a budget-b transfer set is a
prefix of any larger one: one answered stream serves every budget (`evaluate.cells.rob`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from edgeguard.data.natural import rgb01, square_patch

# photographs bundled in installed wheels, none among `edgeguard.data.natural`'s 19 (file, package)
HELDOUT_PHOTOS = {
    "motorcycle_left": ("motorcycle_left.png", "skimage"),
    "microaneurysms": ("microaneurysms.png", "skimage"),
    "grace_hopper": ("grace_hopper.jpg", "matplotlib"),
    "minduka_present": ("Minduka_Present_Blue_Pack.png", "matplotlib"),
}
TERRAIN = ("jacksboro_fault_dem.npz", "topobathy.npz")  # matplotlib sample elevation maps
KINDS = ("other-photos", "faces", "terrain", "fields", "probes", "textures")
TUNING_KINDS = ("probes", "textures")  # synthetic sets of the tuning side's extra thieves (attacks.thieves)
# colour -> grey: ITU-R 601 luma (the tuning side's), ITU-R 709 luma, the plain channel mean, the green channel
GREYS = {"luma601": (0.299, 0.587, 0.114), "luma709": (0.2126, 0.7152, 0.0722), "mean": (1 / 3, 1 / 3, 1 / 3), "green": (0.0, 1.0, 0.0)}


def _sample_file(name: str, package: str) -> Path:
    if package == "skimage":
        import skimage

        return Path(skimage.__file__).parent / "data" / name
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / name


@cache
def images(kind: str) -> tuple[np.ndarray, ...]:
    """The source images of a transfer-set kind, float32 RGB (H, W, 3) in [0, 1]."""
    from skimage.io import imread

    if kind == "other-photos":
        out = [imread(_sample_file(*entry)) for entry in HELDOUT_PHOTOS.values()]
    elif kind == "faces":
        out = list(np.load(_sample_file("lfw_subset.npy", "skimage")))
    elif kind == "terrain":
        maps = []
        for name in TERRAIN:
            with np.load(_sample_file(name, "matplotlib")) as z:
                maps.append(np.asarray(z[z.files[0]], dtype=np.float64))
        out = [(m - m.min()) / (m.max() - m.min()) for m in maps]
    else:
        raise ValueError(f"'{kind}' has no source images; kinds: {', '.join(KINDS)}")
    return tuple(map(rgb01, out))


@dataclass(frozen=True)
class TransferSet:
    """How a thief cuts its queries: which images, crops of what size, which grey."""

    kind: str = "other-photos"
    crop: tuple[float, float] = (0.1, 0.5)  # crop side as a fraction of the image's short side
    grey: str = "luma709"

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.grey not in GREYS or not 0 < self.crop[0] <= self.crop[1] <= 1:
            raise ValueError(f"bad transfer set {self}: kind in {KINDS}, grey in {tuple(GREYS)}, 0 < crop[0] <= crop[1] <= 1")

    def build(self, n: int, shape: tuple[int, int, int], seed: int, stats: tuple[list[float], list[float]] | None = None) -> np.ndarray:
        """n queries (n, C, H, W) float32 in [0, 1]; query i depends on (seed, i) only. `probes`
        needs the data's (mean, std): DivQAT draws its probes in normalised units."""
        if self.kind == "probes":
            if stats is None:
                raise ValueError("probe queries need the data's (mean, std)")
            return np.stack([_probe(shape, stats, seed, i) for i in range(n)])
        return np.stack([self._one(shape, np.random.default_rng([seed, i])) for i in range(n)])

    def _one(self, shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
        channels, h, w = shape
        if self.kind == "fields":
            return _field(shape, rng)
        if self.kind == "textures":
            return (_grating if rng.random() < 0.5 else _dead_leaves)(shape, rng)
        pool = images(self.kind)
        img = pool[rng.integers(len(pool))]
        short = min(img.shape[:2])
        side = max(8, min(short, round(short * rng.uniform(*self.crop))))
        patch = square_patch(img, side, (h, w), rng).astype(np.float32)
        if channels == 1:
            patch = (patch @ np.array(GREYS[self.grey], dtype=np.float32))[..., None]
        return np.clip(patch, 0.0, 1.0).transpose(2, 0, 1)


def _field(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """A 1/f-like image: a Fourier spectrum with amplitude 1/f and random phase, random contrast."""
    channels, h, w = shape
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fy**2 + fx**2)
    f[0, 0] = 1.0
    spectrum = (rng.standard_normal((channels, *f.shape)) + 1j * rng.standard_normal((channels, *f.shape))) / f
    img = np.fft.irfft2(spectrum, s=(h, w))
    img = (img - img.mean()) / (img.std() + 1e-8)
    return np.clip(0.5 + rng.uniform(0.1, 0.3) * img + rng.uniform(-0.2, 0.2), 0.0, 1.0).astype(np.float32)


def _probe(shape: tuple[int, int, int], stats: tuple[list[float], list[float]], seed: int, i: int) -> np.ndarray:
    """One of DivQAT's own probes (`random_fields`), drawn from a torch generator seeded by (seed, i)
    without touching torch's global one, mapped from normalised units back to pixels."""
    import torch

    from edgeguard.train.losses import random_fields

    with torch.random.fork_rng():
        torch.manual_seed(int(np.random.default_rng([seed, i]).integers(2**62)))
        field = random_fields(torch.zeros(1, *shape))[0].numpy()
    mean, std = (np.asarray(v, dtype=np.float32).reshape(-1, 1, 1) for v in stats)
    return np.clip(field * std + mean, 0.0, 1.0).astype(np.float32)


def _grating(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """A sum of 1-3 oriented sine (or square) waves, 1-8 cycles per image, random contrast and level."""
    channels, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w))
    for _ in range(rng.integers(1, 4)):
        angle, freq = rng.uniform(0, np.pi), rng.uniform(1, 8)
        wave = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
        img += rng.uniform(0.3, 1.0) * (np.sign(wave) if rng.random() < 0.3 else wave)
    img = img / (np.abs(img).max() + 1e-8)
    out = 0.5 + rng.uniform(-0.3, 0.3) + rng.uniform(0.1, 0.5) * img
    return np.clip(np.repeat(out[None], channels, 0), 0.0, 1.0).astype(np.float32)


def _dead_leaves(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """Dead leaves: 20-80 opaque discs of random grey, radii with density ~ r^-3 (scale invariant)."""
    channels, h, w = shape
    side = max(h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w), rng.uniform())
    rmin, rmax = 0.03 * side, 0.6 * side
    for _ in range(rng.integers(20, 81)):
        u = rng.uniform()
        r = 1.0 / np.sqrt(u / rmin**2 + (1 - u) / rmax**2)  # inverse CDF of density ~ r^-3 on [rmin, rmax]
        cy, cx = rng.uniform(-0.1, 1.1) * h, rng.uniform(-0.1, 1.1) * w
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = rng.uniform()
    return np.repeat(img[None], channels, 0).astype(np.float32)
