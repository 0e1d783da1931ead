"""Preprocessing as the manifest records it: an image (file, bytes or array) -> the model's input (numpy + Pillow).

Implemented once, here on the device side, and used by training too: the deployed contract is
whatever this module computes, so a training folder, export's checks, a server decoding a JPEG, a
client and a thief's surrogate all get the same pixels and the same float32 (x - mean) / std.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeguard.errors import EdgeguardError

RESIZES = ("stretch", "center-crop")  # whole image to the size / shorter side to the size, then the centre


class Normaliser:
    """(x - mean) / std per channel of (n, C, H, W) float32 images; built once, called per batch."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, -1, 1, 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float32) - self.mean) / self.std).astype(np.float32, copy=False)

    @classmethod
    def fitted(cls, x: np.ndarray, eps: float = 1e-6) -> "Normaliser":
        """Per-channel statistics of x itself (a thief who has only its own queries)."""
        return cls(x.mean(axis=(0, 2, 3)).tolist(), (x.std(axis=(0, 2, 3)) + eps).tolist())


@dataclass(frozen=True)
class ImageSpec:
    """How an image file becomes a (C, H, W) array in [0, 1]: the manifest's `preprocessing`.

    Any mode Pillow reads becomes the model's channels (1: grey, 3: RGB): EXIF orientation is
    applied, the first frame of an animation is taken, transparency is composited on white,
    16-bit and float images are scaled to 8 bits, CMYK and palettes are converted. Then the image
    is resized (bilinear, antialiased) by `resize` and divided by 255.
    """

    channels: int
    size: tuple[int, int]  # (H, W)
    resize: str = "stretch"

    def __post_init__(self) -> None:
        if self.channels not in (1, 3) or self.resize not in RESIZES or min(self.size) < 1:
            raise EdgeguardError(f"bad image preprocessing {asdict(self)}: channels 1 or 3, size >= 1, resize one of {', '.join(RESIZES)}")

    @classmethod
    def from_manifest(cls, record: dict[str, Any], input_shape: Sequence[int]) -> "ImageSpec":
        return cls(int(input_shape[0]), (int(input_shape[1]), int(input_shape[2])), record.get("resize", "stretch"))

    def to_manifest(self) -> dict[str, Any]:
        return {"resize": self.resize, "interpolation": "bilinear", "mode": "L" if self.channels == 1 else "RGB", "scale": "1/255"}

    def load(self, image: "str | Path | bytes | Any") -> np.ndarray:
        """A path, the bytes of a file, or a PIL image -> (C, H, W) float32 in [0, 1]."""
        from PIL import Image, ImageOps

        if isinstance(image, (str, Path)):
            with Image.open(image) as opened:
                return self.load(_first_frame(opened))
        if isinstance(image, (bytes, bytearray, memoryview)):
            with Image.open(io.BytesIO(image)) as opened:
                return self.load(_first_frame(opened))
        image = ImageOps.exif_transpose(image)
        image = _to_mode(image, "L" if self.channels == 1 else "RGB")
        h, w = self.size
        if self.resize == "center-crop":
            image = ImageOps.fit(image, (w, h), Image.Resampling.BILINEAR)
        elif image.size != (w, h):
            image = image.resize((w, h), Image.Resampling.BILINEAR)
        x = np.asarray(image, np.float32) / 255.0
        return x[None] if x.ndim == 2 else x.transpose(2, 0, 1).copy()


def _first_frame(image: Any) -> Any:
    image.seek(0)
    image.load()
    return image


def _to_mode(image: Any, mode: str) -> Any:
    """Grey or RGB from any Pillow mode (see ImageSpec)."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit / 32-bit grey: scale the range to 8 bits
        a = np.asarray(image, np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(a.max()), 1.0)
        image = Image.fromarray(np.clip(a * 255.0 / top, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert(mode)
