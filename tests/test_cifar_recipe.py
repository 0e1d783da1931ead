"""The CIFAR recipe's code path (docs/bring-your-own.md) on tiny files in CIFAR's own on-disk format,
written here: a CIFAR-10 victim trained, exported, and robbed by a thief whose queries are the
CIFAR-100-format images (`attack --transfer-dir D --transfer-dataset cifar100`). The files are
generated, so torchvision's checksums of the real archives are replaced by a check that the files
are there; everything after that is the real path."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

torchvision = pytest.importorskip("torchvision")

from edgeguard.cli import main  # noqa: E402


def images(rng: np.random.Generator, labels: np.ndarray, classes: int) -> np.ndarray:
    """(n, 3072) uint8 rows as CIFAR stores them (R plane, G plane, B plane): a class-dependent colour plus noise."""
    hue = labels[:, None] * (255 // classes)
    base = np.concatenate([np.repeat(hue, 1024, 1), np.repeat(255 - hue, 1024, 1), np.full((len(labels), 1024), 128)], axis=1)
    return np.clip(base + rng.integers(-30, 30, base.shape), 0, 255).astype(np.uint8)


def dump(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))


def write_cifar(root: Path) -> Path:
    rng = np.random.default_rng(0)
    ten = root / "cifar-10-batches-py"
    for name, n in [*((f"data_batch_{i}", 24) for i in range(1, 6)), ("test_batch", 40)]:
        labels = np.arange(n) % 10
        dump(ten / name, {"data": images(rng, labels, 10), "labels": labels.tolist()})
    dump(ten / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    hundred = root / "cifar-100-python"
    for name, n in (("train", 200), ("test", 50)):
        labels = np.arange(n) % 100
        dump(hundred / name, {"data": images(rng, labels, 100), "fine_labels": labels.tolist(), "coarse_labels": (labels // 5).tolist()})
    dump(hundred / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)], "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return root


@pytest.fixture
def present_files_pass(monkeypatch):
    """Generated files cannot match the real archives' md5: accept files that are there."""
    cifar = torchvision.datasets.cifar
    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: all(os.path.isfile(os.path.join(self.root, self.base_folder, f)) for f, _ in self.train_list + self.test_list))


def test_cifar10_victim_cifar100_thief(tmp_path, present_files_pass, torch_threads):
    data = write_cifar(tmp_path / "data")
    runner = CliRunner()
    r = runner.invoke(main, ["train", "--dataset", "cifar10", "--data-dir", str(data), "--epochs", "1", "--qat-epochs", "1", "--runs-dir", str(tmp_path / "runs"), "--name", "c10"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["export", str(tmp_path / "runs" / "c10"), "--int8", "--out", str(tmp_path / "export")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["attack", str(tmp_path / "export" / "c10"), "--transfer-dir", str(data), "--transfer-dataset", "cifar100", "--labels", "argmax", "--budget", "150", "--steps", "20"])
    assert r.exit_code == 0, r.output
    assert "argmax-label knockoff thief, 150 transfer queries" in r.output

    from edgeguard.data import load_dataset
    from edgeguard.errors import EdgeguardError
    from edgeguard.runtime.preprocess import ImageSpec

    cifar = load_dataset("cifar10", data)
    assert (len(cifar.train), len(cifar.pool), len(cifar.test)) == (96, 24, 40) and cifar.input_shape == (3, 32, 32)
    assert cifar.classes[:2] == ["class0", "class1"]
    with pytest.raises(EdgeguardError, match="the victim takes"):
        load_dataset("digits", transfer_dir=data, transfer_dataset="cifar100", spec=ImageSpec(1, (28, 28)))
