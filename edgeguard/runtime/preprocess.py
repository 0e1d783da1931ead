"""Preprocessing as the manifest records it: an image (file, bytes or array) -> the model's input (numpy + Pillow).

Implemented once, here on the device side, and used by training too: the deployed contract is
whatever this module computes, so a training folder, export's checks, a server decoding a JPEG, a
client and a thief's surrogate all get the same pixels and the same float32 (x - mean) / std.

Image files come from strangers on a server, so decoding one is guarded: the pixel count is checked
from the header before any pixel is decoded (decompression bombs), the formats can be restricted
(a server decodes FILE_TYPES only: Pillow's other plugins, EPS's Ghostscript among them, never run),
and every way a file can fail is an `ImageError` saying why, never Pillow's own exception.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Sequence

import numpy as np

from edgeguard.errors import EdgeguardError

RESIZES = ("stretch", "center-crop")  # whole image to the size / shorter side to the size, then the centre
# the image files a server decodes: content type -> Pillow format (common, well-fuzzed decoders only)
FILE_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/bmp": "BMP", "image/gif": "GIF"}
FILE_FORMATS = tuple(FILE_TYPES.values())
# decoded pixels allowed per file: at least a 16-megapixel camera photo, more for models whose input is
# larger than 256x256 (up to 16 times the input's side); a 5000x5000 PNG of one colour is 25 KB on the wire
MIN_MAX_PIXELS = 4096 * 4096
MAX_PIXELS_PER_INPUT_PIXEL = 16 * 16


class ImageError(EdgeguardError):
    """An image file that cannot become an input (the file's fault): truncated, corrupt, empty, not an image."""


class UnsupportedImage(ImageError):
    """A real image in a format that was not allowed (a server: anything outside FILE_TYPES)."""


class ImageTooLarge(ImageError):
    """More pixels than `ImageSpec.max_pixels`: refused from the header, before decoding."""


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

    @property
    def max_pixels(self) -> int:
        """The most pixels a file may decode to (see MIN_MAX_PIXELS): bounds a request's memory and time."""
        return max(MIN_MAX_PIXELS, MAX_PIXELS_PER_INPUT_PIXEL * self.size[0] * self.size[1])

    def load(self, image: "str | Path | bytes | Any", formats: tuple[str, ...] | None = None) -> np.ndarray:
        """A path, the bytes of a file, or a PIL image -> (C, H, W) float32 in [0, 1].

        formats: the Pillow format names a file may be in (None: any Pillow reads). A file that
        cannot be read raises `ImageError` (`UnsupportedImage`, `ImageTooLarge`), whatever Pillow raised.
        """
        if isinstance(image, (str, Path)):
            with open(image, "rb") as f:
                return self._decode(f, formats)
        if isinstance(image, (bytes, bytearray, memoryview)):
            return self._decode(io.BytesIO(image), formats)
        return self._array(image)

    def _decode(self, file: BinaryIO, formats: tuple[str, ...] | None) -> np.ndarray:
        from PIL import Image

        try:
            with warnings.catch_warnings():  # Pillow's own bomb check only warns below 2x its limit
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                opened = Image.open(file, formats=formats)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageTooLarge(f"the image is too large to decode ({e})") from None
        except Exception:  # Pillow raises many types on crafted headers: all mean the same to a caller
            raise _unreadable(file, formats) from None
        with opened:
            w, h = opened.size
            if w * h == 0:
                raise ImageError(f"the image has no pixels ({w}x{h}); send a picture at least 1x1")
            if w * h > self.max_pixels:
                raise ImageTooLarge(
                    f"the image is {w}x{h} = {w * h:,} pixels; at most {self.max_pixels:,} are decoded for this "
                    f"model's {self.size[1]}x{self.size[0]} input: scale it down first"
                )
            try:
                opened.seek(0)  # the first frame of an animation
                opened.load()
                return self._array(opened)
            except Exception as e:  # truncated data, a broken chunk, bad EXIF: found only while decoding
                raise ImageError(f"the {opened.format} image is truncated or corrupt ({type(e).__name__}: {e})") from None

    def _array(self, image: Any) -> np.ndarray:
        from PIL import Image, ImageOps

        image = ImageOps.exif_transpose(image)
        image = _to_mode(image, "L" if self.channels == 1 else "RGB")
        h, w = self.size
        if self.resize == "center-crop":
            image = ImageOps.fit(image, (w, h), Image.Resampling.BILINEAR)
        elif image.size != (w, h):
            image = image.resize((w, h), Image.Resampling.BILINEAR)
        x = np.asarray(image, np.float32) / 255.0
        return x[None] if x.ndim == 2 else x.transpose(2, 0, 1).copy()


def _unreadable(file: BinaryIO, formats: tuple[str, ...] | None) -> ImageError:
    """Why a file did not open: an image of a format not allowed (415 on a server), or not an image at all."""
    from PIL import Image

    if formats is not None:
        try:
            file.seek(0)
            with Image.open(file) as other:  # identifies from the header; never decodes it
                found = other.format
        except Exception:
            found = None
        if found:
            return UnsupportedImage(f"{found} images are not accepted here; send one of {', '.join(formats)}")
    return ImageError("the data is not an image that can be decoded" + (f" (one of {', '.join(formats)} expected)" if formats else ""))


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
