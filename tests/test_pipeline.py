"""The foundation's claims, asserted on the real default run: accuracy, int8-ness, parity, size."""

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeguard.errors import EdgeguardError  # noqa: E402
from edgeguard.export.pipeline import export_run  # noqa: E402
from edgeguard.runtime import DeployedModel  # noqa: E402
from edgeguard.train.run import load_run  # noqa: E402


def test_training_reaches_accuracy_in_every_precision(default_run):
    acc = default_run.metrics["accuracy"]
    assert acc["fp32"] >= 0.95 and acc["fake_quant"] >= 0.95 and acc["int8"] >= 0.95
    assert abs(acc["int8"] - acc["fp32"]) <= 0.01


def test_int8_onnx_is_accurate_small_and_really_int8(default_export):
    _, rows = default_export
    fp32, int8 = rows["fp32"], rows["int8"]
    assert int8["accuracy"] >= 0.95
    assert abs(int8["accuracy"] - fp32["accuracy"]) <= 0.01
    assert int8["size_bytes"] <= 0.35 * fp32["size_bytes"]
    # weights stored as int8, and onnxruntime runs integer kernels after its fusions
    assert int8["weights"]["int8"] > 0.9 * sum(int8["weights"].values())
    assert int8["runtime_ops"].get("QLinearConv", 0) == 3 and int8["runtime_ops"].get("QGemm", 0) == 2
    assert "float32" in fp32["weights"] and "int8" not in fp32["weights"]


def test_int8_onnx_matches_torch_int8(default_export):
    _, rows = default_export
    for split in ("test", "ood"):
        parity = rows["int8"]["parity"][split]
        print(f"int8 ORT vs torch int8 on {split}: {parity}")
        assert parity["argmax_agreement"] >= 0.99
        assert parity["max_abs_diff"] < 0.5  # a few output quantization steps at most


def test_deployed_model_probabilities(default_export):
    folder, _ = default_export
    model = DeployedModel.load(folder)
    probs = model.predict(np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32))
    assert probs.shape == (5, 10)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    with pytest.raises(EdgeguardError, match=r"expected inputs of shape \(n, 1, 28, 28\)"):
        model.predict(np.zeros((1, 3, 28, 28), np.float32))


def test_tampered_model_file_is_refused(default_export, tmp_path):
    folder, _ = default_export
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    with open(copy / "model.int8.onnx", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(EdgeguardError, match="does not match its manifest"):
        DeployedModel.load(copy)
    with pytest.raises(EdgeguardError, match="has no fp32 tflite model"):
        DeployedModel.load(folder, "fp32", "tflite")


def test_corrupt_checkpoint_is_a_sentence(default_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(default_run.dir, run)
    (run / "qat.pt").write_bytes(b"garbage")
    with pytest.raises(EdgeguardError, match="corrupt"):
        load_run(run)
    (run / "qat.pt").unlink()
    with pytest.raises(EdgeguardError, match="missing"):
        load_run(run)


def test_unknown_format_fails_before_work(default_run, tmp_path):
    with pytest.raises(EdgeguardError, match="unknown model format 'coreml'"):
        export_run(default_run.dir, tmp_path, formats=("coreml",))


def test_qnnpack_backend_exports_with_parity(tmp_path, torch_threads):
    from edgeguard.train.run import TrainConfig, train_run

    run = train_run(TrainConfig(backend="qnnpack", epochs=3, qat_epochs=2, runs_dir=str(tmp_path), threads=1))
    row = export_run(run.dir, tmp_path / "export", int8=True).report[0]
    assert row["parity"]["test"]["argmax_agreement"] >= 0.99
    assert row["parity"]["ood"]["argmax_agreement"] >= 0.99
    assert row["accuracy"] >= 0.85
