"""A user's own images: ImageFolder layouts, the image spec chosen from them, the errors, and the whole
flow (train -> export -> accuracy from the manifest alone -> attack with a thief's folder) on
generated, learnable RGB images (class = the colour of a shape on a noisy background)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeguard.data import load_dataset
from edgeguard.errors import EdgeguardError

COLOURS = ((220, 40, 40), (40, 190, 40), (40, 60, 230))  # one per class: learnable in a few epochs


def picture(rng: np.random.Generator, colour: tuple[int, int, int], size: tuple[int, int]) -> Image.Image:
    """A shape of the class colour at a random place on a noisy grey background."""
    h, w = size
    pixels = rng.integers(60, 160, (h, w, 1)).repeat(3, axis=2).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    side = min(h, w) // 2
    top, left = rng.integers(0, h - side), rng.integers(0, w - side)
    box = (int(left), int(top), int(left + side), int(top + side))
    from PIL import ImageDraw

    (ImageDraw.Draw(image).ellipse if rng.random() < 0.5 else ImageDraw.Draw(image).rectangle)(box, fill=colour)
    return image


def write_folder(root: Path, per_class: int, size: tuple[int, int] = (32, 32), seed: int = 0, suffix: str = ".png") -> Path:
    rng = np.random.default_rng(seed)
    for c, colour in enumerate(COLOURS):
        folder = root / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            picture(rng, colour, size).save(folder / f"{i:03d}{suffix}")
    return root


def modes_of(image: Image.Image) -> dict[str, Image.Image]:
    """The same picture in every mode a user's folder may hold."""
    grey16 = Image.fromarray(np.asarray(image.convert("L"), np.uint16) * 257)  # mode I;16
    return {"L": image.convert("L"), "P": image.convert("P"), "RGBA": image.convert("RGBA"), "I;16": grey16, "CMYK": image.convert("CMYK")}


def test_split_layout_spec_and_mixed_modes(tmp_path):
    root = write_folder(tmp_path / "d", per_class=10)
    for mode, image in modes_of(picture(np.random.default_rng(1), COLOURS[0], (32, 32))).items():
        image.save(root / "class0" / f"mode-{mode.replace(';', '')}.{'jpg' if mode == 'CMYK' else 'png'}")
    (root / "class1" / "notes.txt").write_text("not an image: ignored, not counted")
    data = load_dataset("imagefolder", root)
    assert (len(data.train), len(data.pool), len(data.test)) == (21, 7, 7)  # 35 images split 60/20/20, per class
    assert data.input_shape == (3, 32, 32) and data.classes == ["class0", "class1", "class2"]
    assert data.notes["image_size_rule"] == "median image size 32x32 of 35 images"
    assert data.preprocessing["resize"] == "stretch" and data.preprocessing["mode"] == "RGB"
    x = data.train.images(np.arange(len(data.train)))
    assert x.shape == (21, 3, 32, 32) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    again = load_dataset("imagefolder", root)  # fixed split seed
    assert list(again.test.paths) == list(data.test.paths)
    assert not set(data.train.paths) & set(data.pool.paths) | set(data.test.paths) & set(data.train.paths)
    mean, std = data.mean, data.std  # streamed over the train split: equal to the whole array's
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(std, x.std(axis=(0, 2, 3)), atol=1e-6)


def test_train_val_layout_size_rules_and_grey(tmp_path):
    write_folder(tmp_path / "tv" / "train", per_class=5, size=(64, 64))
    write_folder(tmp_path / "tv" / "val", per_class=2, size=(64, 64), seed=1)
    data = load_dataset("imagefolder", tmp_path / "tv")
    assert (len(data.train), len(data.pool), len(data.test)) == (12, 3, 6) and data.input_shape == (3, 64, 64)
    assert load_dataset("imagefolder", tmp_path / "tv", image_size=48).input_shape == (3, 48, 48)

    mixed = write_folder(tmp_path / "mixed", per_class=2, size=(32, 48))
    write_folder(mixed, per_class=1, size=(300, 200), seed=2, suffix=".jpg")
    data = load_dataset("imagefolder", mixed)
    assert data.input_shape == (3, 224, 224) and data.preprocessing["resize"] == "center-crop"
    assert data.notes["image_size_rule"].startswith("224: image sizes are mixed")

    grey = tmp_path / "grey"
    for c in range(2):
        (grey / str(c)).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((20, 20), 60 * c + i, np.uint8), "L").save(grey / str(c) / f"{i}.png")
    assert load_dataset("imagefolder", grey).input_shape == (1, 20, 20)


def test_truncated_files_are_skipped_with_one_warning(tmp_path):
    root = write_folder(tmp_path / "d", per_class=4, suffix=".jpg")
    good = (root / "class0" / "000.jpg").read_bytes()
    for i in range(4):
        (root / "class1" / f"broken{i}.jpg").write_bytes(good[: len(good) // 2])
    (root / "class2" / "garbage.png").write_bytes(b"not a png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_dataset("imagefolder", root)
    messages = [str(w.message) for w in caught if "unreadable" in str(w.message)]
    assert len(messages) == 1 and messages[0].startswith("skipped 5 unreadable or truncated") and "and 2 more" in messages[0]
    assert data.notes["skipped_files"] == 5 and data.notes["images"] == 12


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda r: (write_folder(r, 2), (r / "empty").mkdir()), "class folder .*empty' holds no readable images"),
        (lambda r: (write_folder(r / "train", 2), write_folder(r / "val", 1), (r / "val" / "extra").mkdir()), "class folders that .*train' lacks: extra"),
        (lambda r: r.mkdir(), "no class folders"),
        (lambda r: ((r / "a").mkdir(parents=True), (r / "a" / "x.txt").write_text("")), "holds no readable images"),
        (lambda r: write_folder(r / "train", 2), "no val/ or test/"),
    ],
)
def test_layout_errors_are_one_sentence(tmp_path, make, match):
    make(tmp_path / "d")
    with pytest.raises(EdgeguardError, match=match):
        load_dataset("imagefolder", tmp_path / "d")


def test_image_size_is_for_image_folders_only():
    with pytest.raises(EdgeguardError, match="--image-size applies to --dataset imagefolder only"):
        load_dataset("digits", image_size=32)


def test_training_does_not_depend_on_the_number_of_workers(tmp_path, torch_threads):
    """Workers only decode ahead: the same seed trains the same weights with 0 or 2 of them."""
    from edgeguard.models import build_model
    from edgeguard.runtime.preprocess import Normaliser
    from edgeguard.train.loop import fit
    from edgeguard.train.losses import cross_entropy

    data = load_dataset("imagefolder", write_folder(tmp_path / "d", per_class=8))
    norm = Normaliser(data.mean, data.std)

    def trained(workers: int) -> list:
        torch_threads.manual_seed(0)
        model = build_model("small-cnn", data.input_shape, 3)
        fit(model, data.train, norm, cross_entropy, 2, 2e-3, 8, 0, shift=2, noise=0.5, workers=workers)
        return list(model.state_dict().values())

    assert all(torch_threads.equal(a, b) for a, b in zip(trained(0), trained(2)))


def test_own_images_train_export_accuracy_from_the_manifest_and_attack(tmp_path, torch_threads):
    """train -> export (int8 and fp32) -> accuracy of the int8 file on the val folder, each image
    decoded from its file by the manifest's preprocessing alone -> a thief with its own folder."""
    from click.testing import CliRunner

    from edgeguard.cli import main
    from edgeguard.export.pipeline import export_run
    from edgeguard.manifest import Manifest
    from edgeguard.runtime import DeployedModel
    from edgeguard.runtime.preprocess import ImageSpec
    from edgeguard.train.run import TrainConfig, train_run

    root = tmp_path / "photos"
    write_folder(root / "train", per_class=40, size=(64, 64), suffix=".jpg")
    write_folder(root / "val", per_class=10, size=(64, 64), seed=1)
    cfg = TrainConfig(dataset="imagefolder", data_dir=str(root), image_size=32, epochs=3, qat_epochs=2, workers=1, runs_dir=str(tmp_path / "runs"), name="own")
    run = train_run(cfg)
    assert run.metrics["data"]["image_size_rule"] == "--image-size 32" and run.metrics["input_shape"] == [3, 32, 32]
    fp32 = export_run(run.dir, tmp_path / "export", int8=False).report[0]
    folder = export_run(run.dir, tmp_path / "export", int8=True).folder

    manifest = Manifest.load(folder)
    assert manifest.preprocessing["resize"] == "stretch" and manifest.preprocessing["mode"] == "RGB"
    model = DeployedModel.load(folder)
    spec = ImageSpec.from_manifest(manifest.preprocessing, manifest.input_shape)
    files = sorted((root / "val").rglob("*.png"))
    x = np.stack([spec.load(f) for f in files])
    y = np.array([manifest.classes.index(f.parent.name) for f in files])
    int8_accuracy = float((model.predict(x).argmax(1) == y).mean())
    assert int8_accuracy >= 0.9 and abs(int8_accuracy - fp32["accuracy"]) <= 0.02

    thief = tmp_path / "thief"
    write_folder(thief / "nested" / "deeper", per_class=20, size=(48, 40), seed=3, suffix=".jpg")
    r = CliRunner().invoke(main, ["attack", str(folder), "--transfer-dir", str(thief), "--budget", "60", "--steps", "30"])
    assert r.exit_code == 0, r.output
    assert "60 transfer queries" in r.output
