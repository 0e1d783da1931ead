import pytest

torch = pytest.importorskip("torch")

from edgeguard.errors import EdgeguardError  # noqa: E402
from edgeguard.models import build_model  # noqa: E402
from edgeguard.train.quantize import convert_int8, prepare_qat  # noqa: E402

SHAPES = {"small-cnn": (1, 28, 28), "lenet": (1, 28, 28), "resnet8": (3, 32, 32)}  # torchvision's: tests/test_torchvision_models.py


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("backend", ["x86", "qnnpack"])
def test_every_model_converts_to_quantized_kernels(name, backend, torch_threads):
    torch.manual_seed(0)
    model = build_model(name, SHAPES[name], 10)
    x = torch.rand(8, *SHAPES[name])
    qat = prepare_qat(model, backend)
    qat(x)  # one observed batch calibrates ranges
    int8 = convert_int8(qat, backend)
    kinds = {type(m).__module__ for m in int8.modules()}
    assert any("quantized" in k for k in kinds)
    # every conv/linear weight is stored as int8 in the converted model
    for m in int8.modules():
        if hasattr(m, "weight") and callable(m.weight):
            w = m.weight()
            assert w.dtype == torch.qint8
            assert w.int_repr().min() >= -64 and w.int_repr().max() <= 63
    out = int8(x)
    assert out.shape == (8, 10) and torch.isfinite(out).all()


def test_default_model_size():
    n = sum(p.numel() for p in build_model("small-cnn", (1, 28, 28), 10).parameters())
    assert 50_000 <= n <= 150_000


def test_unknown_model():
    with pytest.raises(EdgeguardError, match="choose one of"):
        build_model("vgg", (1, 28, 28), 10)
