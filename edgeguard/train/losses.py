"""Training losses: a loss is a callable (x, y, student, teacher) -> scalar tensor.

It receives the modules, not just logits, because some losses (DivQAT) must run the student or the
teacher on inputs other than the batch itself.
"""

from __future__ import annotations

from typing import Optional, Protocol

import torch
import torch.nn.functional as F
from torch import nn


class Loss(Protocol):
    def __call__(self, x: torch.Tensor, y: torch.Tensor, student: nn.Module, teacher: Optional[nn.Module]) -> torch.Tensor: ...


def cross_entropy(x: torch.Tensor, y: torch.Tensor, student: nn.Module, teacher: Optional[nn.Module] = None) -> torch.Tensor:
    """Plain (QA) training: CE of the (fake-quantized) student on the clean batch."""
    return F.cross_entropy(student(x), y)


DIRECTIONS = ("forward", "reverse")
INPUTS = ("offmanifold", "clean")
MASSES = ("full", "non-top1")


def off_manifold(x: torch.Tensor, noise: float, smooth: int = 1) -> torch.Tensor:
    """Mixup of the batch with a shuffled copy of itself, plus Gaussian noise.

    With `smooth > 1` the noise is drawn on a grid `smooth` times coarser and upsampled: blobs and
    gradients like those of photographs, unlike the pixel noise an honest camera adds.

    These inputs look like nothing in the training data yet share its low-level statistics: the
    place where a thief's out-of-distribution queries land. Diverging here, not on clean data, is
    what made the prototype's int8 model a useless teacher (see docs/divqat.md).
    """
    a = torch.rand(len(x), 1, 1, 1)
    n, c, h, w = x.shape
    field = torch.randn(n, c, max(1, h // smooth), max(1, w // smooth))
    field = F.interpolate(field, size=(h, w), mode="bilinear", align_corners=False) if smooth > 1 else field
    return a * x + (1 - a) * x[torch.randperm(n)] + noise * field


def divergence(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float, direction: str, mass: str) -> torch.Tensor:
    """Per-sample KL between tempered teacher and student distributions.

    `mass="non-top1"` drops the teacher's top-1 class from both and renormalises the rest, so the
    divergence scrambles only the "dark knowledge" and leaves the top-1 answer to the CE term.
    """
    t, s = teacher_logits / temperature, student_logits / temperature
    if mass == "non-top1":
        keep = torch.ones_like(t, dtype=torch.bool).scatter_(1, t.argmax(1, keepdim=True), False)
        t, s = t[keep].view(len(t), -1), s[keep].view(len(s), -1)
    log_pt, log_ps = F.log_softmax(t, 1), F.log_softmax(s, 1)
    if direction == "reverse":
        log_pt, log_ps = log_ps, log_pt
    return (log_pt.exp() * (log_pt - log_ps)).sum(1)


class DivQATLoss:
    """L = CE(y, p_Q(x)) - lam * mean(clamp(KL(p_FP^T || p_Q^T)(x'), max=margin)).

    x' is the clean batch or off-manifold inputs made from it. The bound stops the divergence term
    from paying for itself by flipping top-1 answers, which would cost accuracy; per sample, so a
    sample that has diverged enough stops pulling. Defaults are the ones measured in docs/divqat.md.
    """

    def __init__(
        self, lam: float = 0.5, temperature: float = 1.0, margin: float = 2.0, direction: str = "forward",
        inputs: str = "offmanifold", mass: str = "full", noise: float = 0.5, smooth: int = 1,
    ):  # fmt: skip
        for name, value, valid in (("direction", direction, DIRECTIONS), ("inputs", inputs, INPUTS), ("mass", mass, MASSES)):
            if value not in valid:
                raise ValueError(f"DivQAT {name} must be one of {', '.join(valid)}, got '{value}'")
        if lam < 0 or temperature <= 0 or margin <= 0 or noise < 0:
            raise ValueError("DivQAT needs lam >= 0, temperature > 0, margin > 0, noise >= 0")
        self.lam, self.temperature, self.margin = lam, temperature, margin
        self.direction, self.inputs, self.mass, self.noise, self.smooth = direction, inputs, mass, noise, smooth

    def __call__(self, x: torch.Tensor, y: torch.Tensor, student: nn.Module, teacher: Optional[nn.Module]) -> torch.Tensor:
        if teacher is None:
            raise ValueError("DivQAT needs the fp32 teacher")
        logits = student(x)
        loss = F.cross_entropy(logits, y)
        if self.lam == 0:
            return loss
        if self.inputs == "clean":
            xd, s = x, logits
        else:
            xd = off_manifold(x, self.noise, self.smooth)
            s = student(xd)
        with torch.no_grad():
            t = teacher(xd)
        d = divergence(t, s, self.temperature, self.direction, self.mass).clamp(max=self.margin)
        return loss - self.lam * d.mean()
