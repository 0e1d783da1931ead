import pytest

torch = pytest.importorskip("torch")

from edgeguard.errors import EdgeguardError  # noqa: E402
from edgeguard.models import build_model  # noqa: E402
from edgeguard.train.quantize import convert_int8, freeze, prepare_qat  # noqa: E402

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


@pytest.mark.parametrize("backend", ["x86", "qnnpack"])
def test_int8_model_keeps_the_scales_qat_trained_with(backend, torch_threads):
    """convert must not re-derive scales: the int8 model is the fake-quantized one that was trained."""
    torch.manual_seed(0)
    model = build_model("resnet8", SHAPES["resnet8"], 10)
    x = torch.randn(16, *SHAPES["resnet8"])
    qat = prepare_qat(model, backend)
    for step in range(3):  # observed batches, weights moving in between
        qat(x * (1 + step))
        with torch.no_grad():
            for p in qat.parameters():
                p.mul_(1.05)
    freeze(qat)  # as training's last epochs do: the fake-quantized model below is the trained one
    qat.eval()
    int8 = convert_int8(qat, backend)
    trained = {n: m for n, m in qat.named_modules() if hasattr(m, "weight_fake_quant")}
    checked = 0
    for name, m in int8.named_modules():
        if name in trained and hasattr(m, "weight") and callable(m.weight):
            checked += 1
            w, scale = m.weight(), trained[name].weight_fake_quant.scale
            per_channel = w.qscheme() == torch.per_channel_affine
            got = w.q_per_channel_scales() if per_channel else torch.tensor([w.q_scale()])
            assert not (w.q_per_channel_zero_points() if per_channel else torch.tensor([w.q_zero_point()])).any()  # symmetric, as TFLite requires
            torch.testing.assert_close(got.float(), scale.float().expand_as(got), rtol=0, atol=0)
            assert m.scale == pytest.approx(float(trained[name].activation_post_process.scale), rel=1e-6)  # float32 vs float64: last bits
    assert trained and checked == len(trained)  # every trained conv/linear was found converted
    with torch.no_grad():
        fake, real = qat(x), int8(x)
    assert (fake.argmax(1) == real.argmax(1)).all()


def test_default_model_size():
    n = sum(p.numel() for p in build_model("small-cnn", (1, 28, 28), 10).parameters())
    assert 50_000 <= n <= 150_000


def test_unknown_model():
    with pytest.raises(EdgeguardError, match="choose one of"):
        build_model("vgg", (1, 28, 28), 10)
