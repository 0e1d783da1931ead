"""torchvision's quantizable models in the zoo: a few QAT steps -> true int8 -> ONNX (and TFLite), checked like the zoo's own.

Tiny inputs (32 px, 8 images) and two optimiser steps keep each model to seconds; torch's int8 model
is the oracle the exported files must match.
"""

import importlib.util

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
import torch.nn.functional as F  # noqa: E402

from edgeguard.errors import EdgeguardError  # noqa: E402
from edgeguard.export.onnx import contents, export_onnx  # noqa: E402
from edgeguard.models import build_model  # noqa: E402
from edgeguard.models.pretrained import load_teacher, read_state, released_weights  # noqa: E402
from edgeguard.models.torchvision_nets import ARCHS  # noqa: E402
from edgeguard.runtime.onnx import OnnxBackend  # noqa: E402
from edgeguard.runtime.parity import compare  # noqa: E402
from edgeguard.train.quantize import convert_int8, prepare_qat  # noqa: E402

SIZE = 32
SIZES = {"shufflenet_v2_x1_0": 64}  # its int8 global mean fails in torch on a 1x1 map (32 px)
CI_TFLITE = {"mobilenet_v2", "mobilenet_v3_large"}  # the rest take 1.5-5 min each here: `pytest -m slow`
FLOAT_KERNELS = {"Conv", "Gemm", "MatMul", "ConvInteger", "MatMulInteger"}  # what an int8 graph must not fall back to


def qat_int8(name: str, backend: str = "x86") -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor]:
    """(teacher, its int8 model after two QAT steps on a fixed batch, that batch)."""
    torch.manual_seed(0)
    size = SIZES.get(name, SIZE)
    teacher = build_model(name, (3, size, size), 3).eval()
    qat = prepare_qat(teacher, backend)
    x, y = torch.randn(8, 3, size, size), torch.arange(8) % 3
    opt = torch.optim.SGD(qat.parameters(), lr=0.01)
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(qat(x), y).backward()
        opt.step()
    return teacher, convert_int8(qat, backend), x


def output_step(int8: torch.nn.Module) -> float:
    """One quantization step of the int8 model's logits (its last layer's scale): rounding differences between
    int8 kernels accumulate over ~20-50 layers to a few such steps, never to a changed answer on a clear margin."""
    return float([m for m in int8.modules() if hasattr(m, "scale") and callable(getattr(m, "weight", None))][-1].scale)


@pytest.fixture(scope="module", params=sorted(ARCHS))
def converted(request, torch_threads):
    return request.param, *qat_int8(request.param)


def test_onnx_file_is_int8_and_matches_torch_int8(converted, tmp_path):
    name, _, int8, x = converted
    path = export_onnx(int8, tuple(x.shape[1:]), tmp_path / "m.onnx")
    info = contents(path)
    weights, ops = info["weights"], info["runtime_ops"]
    assert weights["int8"] >= 0.9 * sum(weights.values()), weights
    assert ops.get("QLinearConv", 0) >= 10 and not FLOAT_KERNELS & set(ops), ops  # every conv and gemm is an integer kernel
    # the input's and the output's; ShuffleNet's split and shuffle move int8. MobileNetV3's hard-sigmoid gates
    # run in float between a DequantizeLinear and a QuantizeLinear (onnxruntime has no int8 HardSigmoid)
    assert ops.get("DequantizeLinear", 0) <= 2 + ops.get("HardSigmoid", 0), ops
    with torch.no_grad():
        reference = int8(x).numpy()
    parity = compare(reference, OnnxBackend(path, threads=1).logits(x.numpy()))
    print(name, ops, parity)
    assert parity["max_abs_diff"] <= 8 * output_step(int8) and parity["argmax_agreement"] >= 0.875


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "resnet18", "shufflenet_v2_x1_0"])
def test_qnnpack_converts_with_int8_weights_in_range(name, torch_threads):
    _, int8, x = qat_int8(name, "qnnpack")
    for m in int8.modules():
        if callable(getattr(m, "weight", None)):
            w = m.weight().int_repr()
            assert w.min() >= -64 and w.max() <= 63  # edgeguard's qconfig, not torchvision's
    assert torch.isfinite(int8(x)).all()


def test_shufflenet_block_is_torchvisions_function(torch_threads):
    """The ONNX-friendly split and shuffle (torchvision_nets.shufflenet_block_forward) compute torchvision's block exactly."""
    from torchvision.models.quantization import shufflenet_v2_x1_0

    torch.manual_seed(0)
    ours = build_model("shufflenet_v2_x1_0", (3, 64, 64), 5).eval()
    theirs = shufflenet_v2_x1_0(weights=None, quantize=False, num_classes=5).eval()
    theirs.load_state_dict({k.removeprefix("net."): v for k, v in ours.state_dict().items()})
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_grey_input_and_cifar_stem(torch_threads):
    grey = build_model("mobilenet_v2", (1, 48, 48), 5)
    assert grey(torch.randn(2, 1, 48, 48)).shape == (2, 5)
    cifar = build_model("resnet18-cifar", (3, 32, 32), 10)
    assert cifar.net.conv1.stride == (1, 1) and cifar.net.conv1.kernel_size == (3, 3)
    assert isinstance(cifar.net.maxpool, torch.nn.Identity)


@pytest.mark.skipif(importlib.util.find_spec("litert_torch") is None, reason="the TFLite route needs litert-torch")
@pytest.mark.parametrize("name", [pytest.param(a, marks=[] if a in CI_TFLITE else pytest.mark.slow) for a in sorted(ARCHS)])
def test_tflite_route_is_int8_and_matches_torch_int8(name, tmp_path, torch_threads):
    from edgeguard.export.pt2e import to_pt2e
    from edgeguard.export.tflite import export_tflite
    from edgeguard.runtime.tflite import TFLiteBackend

    teacher, int8, x = qat_int8(name)
    shape = tuple(x.shape[1:])
    path = export_tflite(to_pt2e(teacher, int8, shape), shape, tmp_path / "m.tflite", int8=True)  # refuses float kernels
    with torch.no_grad():
        reference = int8(x).numpy()
    parity = compare(reference, TFLiteBackend(str(path)).logits(x.numpy()))
    print(name, parity)
    assert parity["max_abs_diff"] <= 8 * output_step(int8) and parity["argmax_agreement"] >= 0.875


def test_teacher_state_dict_in_torchvision_names_with_another_head(tmp_path, torch_threads):
    """torchvision's own 1000-class model's state_dict -> a 3-class zoo model: all but the head loaded."""
    import torchvision

    source = torchvision.models.mobilenet_v2(weights=None)  # the float model users have, 1000 classes
    torch.save(source.state_dict(), tmp_path / "mnv2.pt")
    model = build_model("mobilenet_v2", (3, SIZE, SIZE), 3)
    assert load_teacher(model, read_state(tmp_path / "mnv2.pt"), "mnv2.pt") is True  # the head was replaced
    assert torch.equal(model.net.features[3].conv[1][0].weight, source.features[3].conv[1][0].weight)
    assert model.net.classifier[1].weight.shape == (3, 1280)
    # a grey model takes the RGB stem summed over colour
    grey = build_model("mobilenet_v2", (1, SIZE, SIZE), 3)
    load_teacher(grey, source.state_dict(), "rgb")
    assert torch.allclose(grey.net.features[0][0].weight, source.features[0][0].weight.sum(1, keepdim=True))


def test_a_state_dict_that_does_not_fit_names_the_tensor(tmp_path, torch_threads):
    import torchvision

    model = build_model("resnet18", (3, SIZE, SIZE), 3)
    state = torchvision.models.resnet18(weights=None).state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 3)
    with pytest.raises(EdgeguardError, match=r"tensor 'net.layer1.0.conv1.weight' has shape \(64, 64, 1, 3\), the model needs \(64, 64, 3, 3\)"):
        load_teacher(model, state, "bad.pt")
    with pytest.raises(EdgeguardError, match=r"it has no tensor 'net.conv1.weight'"):
        load_teacher(model, torchvision.models.mobilenet_v2(weights=None).state_dict(), "mnv2.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(EdgeguardError, match="not a readable state_dict"):
        read_state(tmp_path / "junk.pt")


def test_released_weights_offline_is_one_sentence(monkeypatch, torch_threads):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.models.ResNet18_Weights.DEFAULT, "get_state_dict", offline, raising=False)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(EdgeguardError, match=r"cannot download .* resnet18 .*torch.save\(torchvision.models.resnet18\(weights='DEFAULT'\).*--teacher resnet18.pt"):
        released_weights(build_model("resnet18", (3, SIZE, SIZE), 3), "resnet18")
    with pytest.raises(EdgeguardError, match="publishes no weights for resnet18-cifar"):
        released_weights(build_model("resnet18-cifar", (3, SIZE, SIZE), 3), "resnet18-cifar")
