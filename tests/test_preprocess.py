"""Image files of every mode become the model's channels the same way (runtime.preprocess.ImageSpec)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from edgeguard.errors import EdgeguardError
from edgeguard.runtime.preprocess import ImageSpec, Normaliser


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
