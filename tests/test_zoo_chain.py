"""Every zoo model through the chain a user runs: an RGB image folder -> train -> export (ONNX and TFLite)
-> `edgeguard serve`'s app on loopback -> a thief robbing it over HTTP.

test_torchvision_models.py checks each architecture's int8 files against torch's int8 model, and
test_imagefolder.py takes small-cnn from a folder to an attack on the file. This adds the links
between: the run folder an architecture trains into from image files, export_run's verified files
and manifest, the server's answers to image files, and a thief paid in the server's own queries.

One teacher epoch and one QAT epoch on 8 generated images per class (test_imagefolder's pictures):
the chain is under test, not accuracy. CI runs mobilenet_v2 at 32 px to ONNX;
`pytest -m slow` runs every model of the zoo through every route it has.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("torchvision")

from serve.conftest import thread_server  # noqa: E402
from test_imagefolder import write_folder  # noqa: E402

from edgeguard.models.zoo import MODELS  # noqa: E402

SIZES = {"mobilenet_v2": 64, "shufflenet_v2_x1_0": 64}  # the docs' size; ShuffleNet's int8 global mean needs > 1x1 at the end
CI = {"mobilenet_v2"}  # its ONNX chain at 32 px; TFLite files verify and calibrate one image at a time (minutes): `-m slow`
HAS_TFLITE = importlib.util.find_spec("litert_torch") is not None
BUDGET = 24
ROUTES = ("onnx", "tflite") if HAS_TFLITE else ("onnx",)  # every model takes both


def trained(name: str, root: Path, size: int | None = None):
    """A run of `name` on a fresh RGB folder at `size` (default: its size here), train/ and val/ of the three-colour pictures."""
    from edgeguard.train.run import TrainConfig, train_run

    size = size or SIZES.get(name, 32)
    write_folder(root / "photos" / "train", per_class=8, size=(size, size))
    write_folder(root / "photos" / "val", per_class=4, size=(size, size), seed=1, suffix=".jpg")
    cfg = TrainConfig(
        dataset="imagefolder", data_dir=str(root / "photos"), image_size=size, model=name, epochs=1, qat_epochs=1,
        batch_size=8, runs_dir=str(root / "runs"), name=name,
    )  # fmt: skip
    return train_run(cfg)


CHAINS = [pytest.param(m, ("onnx",), 32, id=f"{m}-onnx-32px") for m in sorted(CI)] + [
    pytest.param(m, ROUTES, None, id=f"{m}-{'+'.join(ROUTES)}", marks=pytest.mark.slow) for m in sorted(MODELS)
]


@pytest.mark.parametrize("name, formats, size", CHAINS)
def test_train_export_serve_rob(name, formats, size, tmp_path, torch_threads):
    from edgeguard.evaluate.cells import steal
    from edgeguard.export.pipeline import export_run
    from edgeguard.formats import FORMATS
    from edgeguard.runtime import DeployedModel
    from edgeguard.serve import KeyStore, ServeConfig, Service

    run = trained(name, tmp_path, size)
    result = export_run(run.dir, tmp_path / "export", int8=True, formats=formats)
    assert [e.format for e in result.manifest.models] == list(formats)
    for row in result.report:
        weights = row["weights"]
        assert weights["int8"] >= 0.9 * sum(weights.values()), (row["format"], weights)
        assert row["parity"]["test"]["argmax_agreement"] >= 0.75, row["parity"]  # the file is torch's int8 model

    test = sorted((tmp_path / "photos" / "val").rglob("*.jpg"))
    val = test[::3]
    thief = write_folder(tmp_path / "thief", per_class=10, size=(40, 48), seed=3, suffix=".png")  # its own photos, another size
    store = KeyStore(tmp_path / "keys.db", create=True)
    for fmt in formats:
        local = DeployedModel.load(result.folder, format=fmt)
        expected = local.predict(np.stack([local.image_spec.load(p) for p in val]))
        key = store.add(f"thief-{fmt}")
        service = Service.load(ServeConfig(folder=result.folder, keys=tmp_path / "keys.db", format=fmt))
        with thread_server(service) as url:
            files = [("file", (p.name, p.read_bytes(), "image/jpeg")) for p in val]
            r = httpx.post(f"{url}/predict", files=files, headers={"X-API-Key": store.add(f"user-{fmt}")}, timeout=60)
            assert r.status_code == 200, r.text
            assert r.json()["probabilities"] == expected.tolist()  # the served file, on the manifest's decode
            row = steal(str(result.folder), url=url, api_key=key, source="transfer", transfer_dir=str(thief), budget=BUDGET, steps=10)
        assert row["answered"] == BUDGET + len(test), row  # the thief paid in served queries
        assert 0.0 <= row["fidelity"] <= 1.0 and local.entry.file.endswith(FORMATS[fmt].suffix)
