"""DivQAT: the loss is what it says, and its divergence survives into the int8 ONNX model."""

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from edgeguard.errors import EdgeguardError  # noqa: E402
from edgeguard.models import build_model  # noqa: E402
from edgeguard.train.losses import DivQATLoss, divergence, probe_pass, probe_target_loss  # noqa: E402
from edgeguard.train.quantize import prepare_qat  # noqa: E402
from edgeguard.train.run import TrainConfig  # noqa: E402


class Fixed(nn.Module):
    """A 'model' that returns given logits (plus a trainable offset, to see gradients)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits
        self.offset = nn.Parameter(torch.zeros(logits.shape[1]))

    def forward(self, x):
        return self.logits + self.offset


def test_loss_is_ce_minus_bounded_kl():
    t = torch.tensor([[4.0, 1.0, 0.0], [0.0, 3.0, 0.5]])
    s = torch.tensor([[1.0, 2.0, 0.0], [0.2, 0.1, 2.0]])
    y = torch.tensor([0, 1])
    x = torch.zeros(2, 1)
    pt, ps = F.softmax(t, 1), F.softmax(s, 1)
    kl = (pt * (pt.log() - ps.log())).sum(1)  # forward KL by hand
    reverse_kl = (ps * (ps.log() - pt.log())).sum(1)
    for direction, div in (("forward", kl), ("reverse", reverse_kl)):
        loss = DivQATLoss(lam=0.3, margin=10.0, direction=direction, inputs="clean", mass="full", anchor=0.0, target="away")
        expected = F.cross_entropy(s, y) - 0.3 * div.mean()
        assert torch.allclose(loss(x, y, Fixed(s), Fixed(t)), expected, atol=1e-6)
    # the bound: with a margin below both KLs the divergence term is the constant lam * margin
    tight = DivQATLoss(lam=0.3, margin=0.01, direction="forward", inputs="clean", mass="full", anchor=0.0, target="away")
    assert kl.min() > 0.01
    assert torch.allclose(tight(x, y, Fixed(s), Fixed(t)), F.cross_entropy(s, y) - 0.3 * 0.01, atol=1e-6)


def test_bounded_divergence_gives_no_gradient_past_the_margin():
    t, s = torch.tensor([[5.0, 0.0, 0.0]]), torch.tensor([[0.0, 5.0, 0.0]])
    y = torch.tensor([1])
    grads = []
    for loss in (DivQATLoss(lam=1.0, margin=0.5, inputs="clean", mass="full", anchor=0.0, target="away"), lambda x, y, st, te: F.cross_entropy(st(x), y)):
        student = Fixed(s)
        loss(torch.zeros(1, 1), y, student, Fixed(t)).backward()
        grads.append(student.offset.grad.clone())
    assert torch.allclose(grads[0], grads[1])


def test_non_top1_divergence_ignores_the_top_class():
    t = torch.tensor([[5.0, 1.0, 0.0]])
    a = torch.tensor([[9.0, 1.0, 0.0]])  # same non-top-1 shape, different top-1 mass
    assert divergence(t, a, 1.0, "forward", "non-top1").item() < 1e-6
    assert divergence(t, a, 1.0, "forward", "full").item() > 0.01
    assert divergence(t, torch.tensor([[5.0, 0.0, 1.0]]), 1.0, "forward", "non-top1").item() > 0.1


def test_gradients_flow_through_fake_quant_and_probes_leave_statistics_alone():
    torch.manual_seed(0)
    teacher = build_model("small-cnn", (1, 28, 28), 10).eval()
    student = prepare_qat(teacher, "x86")
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    student(x)  # observers and BN statistics see one honest batch
    before = {k: v.clone() for k, v in student.state_dict().items() if "running" in k or "min_val" in k or "max_val" in k or "num_batches" in k}
    probe = 3 + 10 * torch.randn(16, 1, 28, 28)
    outputs = {}
    for mode in ("batch", "running"):
        with probe_pass(student, mode):
            outputs[mode] = student(probe)
            outputs[mode].sum().backward()  # the graph survives the buffer swap
    after = student.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert student.training
    # "batch" normalises the probes with their own statistics, "running" with the honest ones
    assert not torch.allclose(outputs["batch"], outputs["running"], atol=1e-3)
    student.zero_grad()
    loss = DivQATLoss()(x, y, student, teacher)
    loss.backward()
    grad = student.features[0][0].weight.grad
    assert grad is not None and grad.abs().sum() > 0
    with pytest.raises(ValueError, match="batch_norm must be one of"):
        with probe_pass(student, "sometimes"):
            pass


def test_bad_options_are_sentences():
    with pytest.raises(EdgeguardError, match="inputs must be one of"):
        TrainConfig(method="divqat", method_options={"inputs": "everywhere"}).validate()
    with pytest.raises(EdgeguardError, match="bad DivQAT option"):
        TrainConfig(method="divqat", method_options={"lambda": 1}).validate()


def test_divqat_diverges_on_transfer_inputs_but_keeps_accuracy(default_export, divqat_export):
    """Measured by export on the int8 ONNX file in onnxruntime, against plain QAT."""
    qat, div = default_export[1]["int8"], divqat_export
    print("transfer KL qat", qat["teacher"]["transfer"]["kl"], "divqat", div["teacher"]["transfer"]["kl"])
    print("accuracy qat", qat["accuracy"], "divqat", div["accuracy"])
    assert div["teacher"]["transfer"]["kl"] > 10 * qat["teacher"]["transfer"]["kl"]
    assert div["teacher"]["transfer"]["kl"] > 0.3
    assert div["accuracy"] >= qat["accuracy"] - 0.015
    for shift, acc in div["shifted_accuracy"].items():
        assert acc >= qat["shifted_accuracy"][shift] - 0.03, shift
    # on honest test data the two stay close: the divergence lives where thieves query
    assert div["teacher"]["test"]["top1_agreement"] >= 0.98


@pytest.mark.parametrize("name,shape", [("small-cnn", (1, 28, 28)), ("lenet", (1, 28, 28)), ("resnet8", (3, 32, 32))])
@pytest.mark.parametrize("backend", ["x86", "qnnpack"])
def test_divqat_trains_every_zoo_model_on_both_backends(name, shape, backend, torch_threads):
    """A few DivQAT steps move the int8-bound student away from its teacher on probe inputs,
    and the result still converts to quantized kernels."""
    from edgeguard.train.losses import random_fields
    from edgeguard.train.quantize import convert_int8

    torch.manual_seed(0)
    teacher = build_model(name, shape, 10).eval()
    student = prepare_qat(teacher, backend)
    x, y = torch.rand(16, *shape), torch.randint(0, 10, (16,))
    probes = random_fields(x)
    loss = DivQATLoss()

    def probe_divergence() -> float:
        with torch.no_grad(), probe_pass(student, loss.probe_bn):
            return divergence(teacher(probes), student(probes), 1.0, "reverse", "full").mean().item()

    student(x)  # training's first forward observes the ranges the probe pass then keeps fixed
    before = probe_divergence()
    opt = torch.optim.Adam(student.parameters(), lr=5e-3)
    for _ in range(5):
        value = loss(x, y, student, teacher)
        opt.zero_grad()
        value.backward()
        opt.step()
    assert torch.isfinite(value)
    after = probe_divergence()
    assert after > 3 * before and after > before + 1e-3  # random-init teachers answer near-uniformly: small absolute values
    int8 = convert_int8(student, backend)
    assert any("quantized" in type(m).__module__ for m in int8.modules())
    assert torch.isfinite(int8(x)).all()


def test_teacher_free_probe_targets_pull_to_uniform_or_one_class():
    t = torch.tensor([[4.0, 1.0, 0.0], [0.0, 3.0, 0.5]])
    s = torch.tensor([[1.0, 2.0, 0.0], [0.2, 0.1, 2.0]])
    y, x = torch.tensor([0, 1]), torch.zeros(2, 1)
    log_ps = F.log_softmax(s, 1)
    uniform_kl = (torch.full_like(s, 1 / 3) * (torch.log(torch.tensor(1 / 3)) - log_ps)).sum(1)  # KL(u || p_Q) by hand
    q = torch.tensor([0.5, 0.25, 0.25])  # the signature for 3 classes, by hand
    signature_kl = (q * (q.log() - log_ps)).sum(1)
    for target, term in (("uniform", uniform_kl), ("fixed", -log_ps[:, 0]), ("signature", signature_kl)):
        loss = DivQATLoss(lam=0.7, inputs="clean", anchor=0.0, target=target, signature_mass=0.5, temperature=1.0)
        assert torch.allclose(loss(x, y, Fixed(s), Fixed(t)), F.cross_entropy(s, y) + 0.7 * term.mean(), atol=1e-6)
        # the teacher plays no part: any teacher gives the same loss
        assert torch.allclose(loss(x, y, Fixed(s), Fixed(-t)), loss(x, y, Fixed(s), Fixed(t)))
    # met targets cost nothing: a uniform answer for "uniform", the signature for "signature"
    for target, met in (("uniform", torch.zeros(2, 3)), ("signature", q.log().repeat(2, 1))):
        assert DivQATLoss(lam=1.0, inputs="clean", anchor=0.0, target=target, signature_mass=0.5, temperature=1.0)(x, y, Fixed(met), Fixed(t)).item() == pytest.approx(
            F.cross_entropy(met, y).item(), abs=1e-6
        )
    # tempered (T = 2): the signature and the answers are both flattened before comparing them
    q2 = q.sqrt() / q.sqrt().sum()
    tempered = (q2 * (q2.log() - F.log_softmax(s / 2, 1))).sum(1)
    assert torch.allclose(DivQATLoss(lam=0.7, inputs="clean", anchor=0.0, signature_mass=0.5, temperature=2.0)(x, y, Fixed(s), Fixed(t)), F.cross_entropy(s, y) + 0.7 * tempered.mean(), atol=1e-6)
    assert DivQATLoss(lam=1.0, inputs="clean", anchor=0.0, signature_mass=0.5, temperature=4.0)(x, y, Fixed(q.log().repeat(2, 1)), Fixed(t)).item() == pytest.approx(F.cross_entropy(q.log().repeat(2, 1), y).item(), abs=1e-6)
    # ...so that the order of the small classes behind the signature counts: against a top class off
    # the signature (0.9 for 0.98), an answer with the right top class that ranks the other 9 classes
    # (as a teacher would) weighs 0.07 as much at T = 1 and 0.48 at T = 4
    ranked = torch.log(torch.tensor([[0.98] + [0.02 * w / 45 for w in range(1, 10)]]))
    off = torch.log(torch.tensor([[0.9] + [0.1 / 9] * 9]))
    weight = {temp: (probe_target_loss(ranked, "signature", 0.98, temp) / probe_target_loss(off, "signature", 0.98, temp)).item() for temp in (1.0, 4.0)}
    assert weight[4.0] > 5 * weight[1.0]
    # on probes the gradient of the probe term moves the student's answers towards class 0 ("fixed")
    student = Fixed(torch.zeros(4, 3))
    (DivQATLoss(lam=1.0, inputs="fields", anchor=0.0, target="fixed")(torch.zeros(4, 1, 8, 8), torch.tensor([1, 1, 2, 2]), _Probed(student), Fixed(t[:1])) ).backward()
    assert student.offset.grad[0] < 0  # descending raises class 0's logit
    with pytest.raises(ValueError, match="target"):
        DivQATLoss(target="teacher")
    # the defaults, chosen on the tuning side (docs/divqat.md): fixed is as strong but hides thieves from the monitor
    assert (DivQATLoss().target, DivQATLoss().lam, DivQATLoss().temperature, DivQATLoss().signature_mass) == ("signature", 2.4, 2.0, 0.98)
    # the temperature's default follows the target: the other targets were measured at 1
    assert [DivQATLoss(target=t).temperature for t in ("away", "fixed", "uniform")] == [1.0, 1.0, 1.0]
    assert DivQATLoss(target="away", temperature=3.0).temperature == 3.0
    assert TrainConfig(method="divqat", method_options={"target": "uniform"}).loss().target == "uniform"
    with pytest.raises(EdgeguardError, match="target"):
        TrainConfig(method="divqat", method_options={"target": "nowhere"}).loss()
    # on a folder of photos the probe term weighs less (losses.DATASET_DEFAULTS), and a run records it;
    # the user's own --lam still wins, and digits keep theirs
    photos = TrainConfig(dataset="imagefolder", method="divqat")
    assert (photos.loss().lam, photos.spelled_out().method_options["lam"]) == (0.3, 0.3)
    assert TrainConfig(dataset="imagefolder", method="divqat", method_options={"lam": 2.0}).loss().lam == 2.0
    assert TrainConfig(method="divqat").loss().lam == 2.4


class _Probed(nn.Module):
    """Answers any input with the wrapped module's logits (one row per input)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)[: len(x)]


def test_sharpen_adds_the_entropy_of_probe_answers():
    t = torch.tensor([[4.0, 1.0, 0.0], [0.0, 3.0, 0.5]])
    s = torch.tensor([[1.0, 2.0, 0.0], [0.2, 0.1, 2.0]])
    y, x = torch.tensor([0, 1]), torch.zeros(2, 1)
    ps = F.softmax(s, 1)
    entropy = -(ps * ps.log()).sum(1).mean()
    for target in ("away", "uniform"):
        base = DivQATLoss(lam=0.3, margin=10.0, inputs="clean", anchor=0.0, target=target)
        sharp = DivQATLoss(lam=0.3, margin=10.0, inputs="clean", anchor=0.0, target=target, sharpen=0.5)
        assert torch.allclose(sharp(x, y, Fixed(s), Fixed(t)), base(x, y, Fixed(s), Fixed(t)) + 0.5 * entropy, atol=1e-6)
    # with lam 0 the entropy term alone still acts, and a one-hot-like answer costs (almost) nothing
    only = DivQATLoss(lam=0.0, inputs="clean", anchor=0.0, sharpen=1.0)
    assert only(x, y, Fixed(s), Fixed(t)).item() == pytest.approx((F.cross_entropy(s, y) + entropy).item(), abs=1e-6)
    confident = torch.tensor([[30.0, 0.0, 0.0], [0.0, 30.0, 0.0]])
    assert only(x, y, Fixed(confident), Fixed(t)).item() < 1e-6
    with pytest.raises(ValueError):
        DivQATLoss(sharpen=-1.0)
