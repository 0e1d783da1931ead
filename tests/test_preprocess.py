"""Image files of every mode become the model's channels the same way (runtime.preprocess.ImageSpec)."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from edgeguard.errors import EdgeguardError
from edgeguard.runtime.preprocess import FILE_FORMATS, MIN_MAX_PIXELS, ImageError, ImageSpec, ImageTooLarge, Normaliser, UnsupportedImage


def encoded(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def test_every_mode_becomes_rgb_or_grey_in_unit_range():
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8), "RGB")
    spec = ImageSpec(3, (16, 16))
    for image in (rgb, rgb.convert("L"), rgb.convert("P"), rgb.convert("RGBA"), rgb.convert("CMYK"), rgb.convert("I;16")):
        x = spec.load(encoded(image, "TIFF" if image.mode == "CMYK" else "PNG"))
        assert x.shape == (3, 16, 16) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1, image.mode
    assert ImageSpec(1, (8, 8)).load(encoded(rgb)).shape == (1, 8, 8)


def test_sixteen_bit_grey_keeps_its_range_and_alpha_lies_on_white():
    ramp = Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)  # mode I;16
    x = ImageSpec(1, (8, 8)).load(encoded(ramp))
    assert x[0, 0, 0] == 0 and x[0, -1, -1] == pytest.approx(63000 / 65535, abs=1 / 255)
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.all(ImageSpec(3, (4, 4)).load(encoded(clear)) == 1.0)


def test_exif_orientation_is_applied_and_center_crop_keeps_the_centre():
    wide = np.zeros((10, 40, 3), np.uint8)
    wide[:, 15:25] = 255  # a white band in the middle
    image = Image.fromarray(wide, "RGB")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    rotated = ImageSpec(3, (40, 10)).load(encoded(image, "JPEG", exif=exif, quality=95))
    assert rotated.shape == (3, 40, 10) and rotated[:, 18:22].mean() > 0.9 and rotated[:, :5].mean() < 0.1
    assert ImageSpec(3, (10, 10), "center-crop").load(image).mean() > 0.9


def test_normaliser_and_bad_specs():
    x = np.full((2, 3, 4, 4), 0.5, np.float32)
    assert np.allclose(Normaliser([0.5, 0.25, 0.0], [0.5, 0.25, 1.0])(x)[0, :, 0, 0], [0.0, 1.0, 0.5])
    with pytest.raises(EdgeguardError, match="channels 1 or 3"):
        ImageSpec(4, (8, 8))


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height over a few bytes of pixel data: a bomb, or a 0-pixel image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_the_pixel_limit_follows_the_model_and_is_checked_before_decoding():
    assert ImageSpec(1, (28, 28)).max_pixels == MIN_MAX_PIXELS  # at least a 16-megapixel photo
    assert ImageSpec(3, (512, 512)).max_pixels == 256 * 512 * 512  # 16 times the input's side
    spec = ImageSpec(1, (28, 28))
    flat = encoded(Image.new("L", (5000, 5000)))  # 25 MP of one colour: ~25 KB on the wire
    assert len(flat) < 100_000
    start = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="5000x5000 = 25,000,000 pixels; at most 16,777,216"):
        spec.load(flat)
    assert time.perf_counter() - start < 0.05  # refused from the header, not after decoding 25 MP
    with pytest.raises(ImageTooLarge, match="too large to decode"):
        spec.load(png_header(100_000, 100_000))  # beyond even Pillow's own limit


def test_unreadable_files_raise_image_errors_never_pillows_own():
    spec = ImageSpec(3, (8, 8))
    jpeg = encoded(Image.new("RGB", (32, 32), (200, 30, 30)), "JPEG")
    for bad in (jpeg[: len(jpeg) // 2], b"", b"not an image", b'{"inputs": []}', png_header(0, 10), jpeg[:2] + bytes(40) + jpeg[42:]):
        with pytest.raises(ImageError):
            spec.load(bad, FILE_FORMATS)
    noise = encoded(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(ImageError, match="JPEG image is truncated or corrupt"):  # the header whole, the pixels cut
        spec.load(noise[: len(noise) * 2 // 3])


def test_formats_can_be_restricted_and_the_refusal_names_the_format():
    tiff = encoded(Image.new("RGB", (8, 8)), "TIFF")
    assert ImageSpec(3, (8, 8)).load(tiff).shape == (3, 8, 8)  # any format Pillow reads, by default
    with pytest.raises(UnsupportedImage, match="TIFF images are not accepted here; send one of JPEG, PNG, WEBP, BMP, GIF"):
        ImageSpec(3, (8, 8)).load(tiff, FILE_FORMATS)


def test_an_animation_is_its_first_frame():
    frames = [Image.new("L", (8, 8), value) for value in (0, 255, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    assert ImageSpec(1, (8, 8)).load(buffer.getvalue()).max() == 0.0
