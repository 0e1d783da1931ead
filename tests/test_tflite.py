"""The TFLite route on the real default and DivQAT runs: parity with torch's int8, int8-ness, divergence, serving."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

from edgeguard import formats  # noqa: E402
from edgeguard.data.natural import natural_patches  # noqa: E402
from edgeguard.errors import EdgeguardError  # noqa: E402
from edgeguard.export import tflite  # noqa: E402
from edgeguard.export.pipeline import export_run  # noqa: E402
from edgeguard.export.pt2e import to_pt2e  # noqa: E402
from edgeguard.metrics import compare  # noqa: E402
from edgeguard.runtime import DeployedModel, softmax  # noqa: E402
from edgeguard.runtime.preprocess import Normaliser  # noqa: E402
from edgeguard.runtime.tflite import TFLiteBackend, interpreter_class  # noqa: E402


@pytest.fixture(scope="module")
def both_formats(default_run, default_export, tmp_path_factory):
    """A copy of the default export (int8 + fp32 ONNX) plus the int8 TFLite: (folder, tflite row, int8 ONNX row)."""
    folder, onnx_rows = default_export
    out = tmp_path_factory.mktemp("tflite")
    shutil.copytree(folder, out / folder.name)
    row = export_run(default_run.dir, out, int8=True, formats=("tflite",)).report[0]
    return out / folder.name, row, onnx_rows["int8"]


def test_tflite_int8_is_accurate_and_matches_torch_int8(both_formats):
    _, row, onnx = both_formats
    for split in ("test", "ood"):
        parity = row["parity"][split]
        print(f"int8 TFLite vs torch int8 on {split}: {parity}")
        assert parity["argmax_agreement"] >= 0.99
        assert parity["max_abs_diff"] < 0.5  # a few output quantization steps at most
    print(f"accuracy TFLite {row['accuracy']:.4f} ONNX {onnx['accuracy']:.4f}; size TFLite {row['size_bytes']} ONNX {onnx['size_bytes']}")
    assert row["accuracy"] >= 0.95
    assert abs(row["accuracy"] - onnx["accuracy"]) <= 0.01


def test_tflite_file_is_fully_int8(both_formats):
    folder, row, _ = both_formats
    weights, ops = row["weights"], row["runtime_ops"]
    assert weights["int8"] > 0.99 * sum(weights.values()) and "float32" not in weights
    assert ops.get("FULLY_CONNECTED") == 2 and ops.get("CONV_2D", 0) + ops.get("DEPTHWISE_CONV_2D", 0) == 3
    assert "DEQUANTIZE" not in ops and "QUANTIZE" not in ops  # int8 from input to output
    # the interpreter agrees: every tensor it allocates is int8 or int32 (biases, shapes), none float
    interpreter = interpreter_class()(model_path=str(folder / "model.int8.tflite"))
    assert {d["dtype"].__name__ for d in interpreter.get_tensor_details()} <= {"int8", "int32"}
    entry = DeployedModel.load(folder, "int8", "tflite").entry
    assert entry.quantization["io"] == row["io"]
    assert row["io"]["input"]["dtype"] == "int8" and row["io"]["input"]["scale"] > 0


def test_tflite_backend_batches_and_threads_agree(both_formats):
    folder, _, _ = both_formats
    x = np.random.default_rng(0).random((7, 1, 28, 28), dtype=np.float32)
    one = DeployedModel.load(folder, "int8", "tflite")
    two = DeployedModel.load(folder, "int8", "tflite", threads=2)
    batched = one.logits(x)
    assert batched.dtype == np.float32 and batched.shape == (7, 10)
    np.testing.assert_array_equal(batched, np.concatenate([one.logits(x[i : i + 1]) for i in range(7)]))
    np.testing.assert_array_equal(batched, two.logits(x))


def test_serve_answers_from_tflite_and_onnx(both_formats, tmp_path):
    from starlette.testclient import TestClient

    from edgeguard.serve import KeyStore, ServeConfig, Service, create_app

    folder, _, _ = both_formats
    key = KeyStore(tmp_path / "keys.db", create=True).add("alice")
    x = natural_patches(8, (1, 28, 28), seed=5)
    answers = {}
    for fmt in ("tflite", "onnx"):
        service = Service.load(ServeConfig(folder=folder, keys=tmp_path / "keys.db", format=fmt))
        with TestClient(create_app(service)) as client:
            r = client.post("/predict", json={"inputs": x.tolist()}, headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        answers[fmt] = np.asarray(r.json()["probabilities"])
    np.testing.assert_allclose(answers["tflite"], DeployedModel.load(folder, "int8", "tflite").predict(x), atol=1e-6)
    assert (answers["tflite"].argmax(1) == answers["onnx"].argmax(1)).mean() >= 0.875


def test_device_side_serves_tflite_without_torch(both_formats):
    folder, _, _ = both_formats
    code = (
        "import sys, numpy as np; from edgeguard.runtime import DeployedModel; "
        f"m = DeployedModel.load({str(folder)!r}, 'int8', 'tflite'); m.predict(np.zeros((2, 1, 28, 28), np.float32)); "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_divqat_divergence_survives_the_tflite_route(divqat_run, tmp_path):
    """Teacher vs TFLite on natural patches, against teacher vs torch's int8: DivQAT's effect is kept."""
    run, int8 = divqat_run, divqat_run.int8()
    path = tflite.export_tflite(to_pt2e(run.teacher, int8, run.input_shape), run.input_shape, tmp_path / "m.tflite", int8=True)
    norm = Normaliser(run.metrics["mean"], run.metrics["std"])
    x = torch.from_numpy(norm(natural_patches(1000, run.input_shape, seed=10_000)))
    with torch.no_grad():
        teacher, reference = softmax(run.teacher(x).numpy()), softmax(int8(x).numpy())
    got = softmax(TFLiteBackend(path).logits(x.numpy()))
    via_torch, via_tflite = compare(teacher, reference), compare(teacher, got)
    print(f"teacher vs torch int8: {via_torch}\nteacher vs TFLite int8: {via_tflite}")
    assert via_tflite["kl"] > 0.3  # DivQAT's divergence is there (plain QAT's is ~0.01)
    assert abs(via_tflite["kl"] - via_torch["kl"]) <= 0.05 * via_torch["kl"]
    assert (got.argmax(1) == reference.argmax(1)).mean() >= 0.99


def test_missing_packages_are_sentences(default_run, tmp_path, monkeypatch):
    real = formats.importlib.util.find_spec
    monkeypatch.setattr(formats.importlib.util, "find_spec", lambda name: None if name == "litert_torch" else real(name))
    with pytest.raises(EdgeguardError, match=r"tflite export needs litert_torch: pip install 'edgeguard\[tflite-export\]'"):
        export_run(default_run.dir, tmp_path, formats=("onnx", "tflite"))
    assert not (tmp_path / default_run.dir.name).exists()  # refused before any work


def test_interpreter_errors_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # as if ai-edge-litert were not installed
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)  # nor tflite-runtime
    with pytest.raises(EdgeguardError, match=r"needs a TFLite interpreter: pip install 'edgeguard\[tflite\]'"):
        interpreter_class()
    # a tflite-runtime built for numpy 1 fails inside its extension under numpy 2
    package = tmp_path / "tflite_runtime"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "interpreter.py").write_text("raise ImportError('numpy.core.multiarray failed to import')\n")
    monkeypatch.delitem(sys.modules, "tflite_runtime")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(EdgeguardError, match=r"tflite-runtime needs numpy<2 .*ai-edge-litert"):
        interpreter_class()


def test_an_int8_graph_the_route_cannot_place_is_a_sentence(torch_threads):
    """Two FloatFunctional adds in one module: which add's quantization is which cannot be told apart."""
    from torch import nn
    from torch.ao.nn.quantized import FloatFunctional

    from edgeguard.models.blocks import ConvBNReLU, QuantizableNet
    from edgeguard.train.quantize import convert_int8, prepare_qat

    class TwoAdds(QuantizableNet):
        def __init__(self):
            super().__init__()
            self.conv, self.a, self.b, self.fc = ConvBNReLU(1, 2), FloatFunctional(), FloatFunctional(), nn.Linear(2 * 8 * 8, 3)

        def body(self, x):
            y = self.conv(x)
            return self.fc(self.b.add(self.a.add(y, y), y).flatten(1))

    teacher = TwoAdds().eval()
    qat = prepare_qat(teacher, "x86")
    qat(torch.randn(4, 1, 8, 8))
    with pytest.raises(EdgeguardError, match=r"cannot tell which quantization .* 'add.*export it to ONNX"):
        to_pt2e(teacher, convert_int8(qat, "x86"), (1, 8, 8))
