import gzip
import struct

import numpy as np
import pytest

from edgeguard.data import load_dataset
from edgeguard.data.natural import natural_patches
from edgeguard.errors import EdgeguardError


def test_digits_splits_are_fixed_disjoint_and_balanced():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert (len(a.train), len(a.pool), len(a.test)) == (1078, 360, 359)
    assert a.input_shape == (1, 28, 28)
    np.testing.assert_array_equal(a.test.x, b.test.x)
    assert a.train.x.min() >= 0 and a.train.x.max() <= 1
    # no image is in two splits
    keys = [{x.tobytes() for x in s.x} for s in (a.train, a.pool, a.test)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    counts = np.bincount(a.test.y, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38


def test_natural_patches_are_deterministic_and_natural():
    from edgeguard.data.natural import _draw

    p = natural_patches(64, (1, 28, 28), seed=3)
    p[0] = -1.0  # a caller's writes do not reach the process's cached set
    np.testing.assert_array_equal(natural_patches(64, (1, 28, 28), seed=3), _draw(64, (1, 28, 28), 3))  # cached = cut afresh
    p = natural_patches(64, (1, 28, 28), seed=3)
    assert p.shape == (64, 1, 28, 28) and p.dtype == np.float32
    assert 0 <= p.min() and p.max() <= 1
    assert p.std(axis=(1, 2, 3)).mean() > 0.02  # real image content, not flat
    assert natural_patches(4, (3, 32, 32)).shape == (4, 3, 32, 32)


def test_unknown_dataset():
    with pytest.raises(EdgeguardError, match="choose one of: digits, mnist"):
        load_dataset("imagenet")


def test_missing_torchvision_dataset_is_a_sentence(tmp_path):
    pytest.importorskip("torchvision")
    with pytest.raises(EdgeguardError, match="--download"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


def _idx(path, array, magic):
    with gzip.open(path, "wb") if str(path).endswith(".gz") else open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes())


def test_mnist_loads_from_files_in_torchvision_format(tmp_path):
    """The real MNIST code path, on files this test writes in MNIST's own idx format."""
    pytest.importorskip("torchvision")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 50), ("t10k", 20)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), 0x803)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10, 0x801)
    ds = load_dataset("mnist", data_dir=tmp_path)
    assert (len(ds.train), len(ds.pool), len(ds.test)) == (40, 10, 20)
    assert ds.input_shape == (1, 28, 28) and ds.train.x.max() <= 1.0
    assert ds.classes[0].startswith("0")
