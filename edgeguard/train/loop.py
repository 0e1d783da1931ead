"""One training loop for every phase (fp32 teacher, QAT, DivQAT); the loss is the pluggable part."""

from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from edgeguard.errors import EdgeguardError
from edgeguard.train.losses import Loss

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """Where training runs: 'auto' takes a GPU when torch sees one. Conversion and export stay on the CPU."""
    if name not in DEVICES:
        raise EdgeguardError(f"unknown device '{name}'; choose one of: {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise EdgeguardError("--device cuda: torch sees no CUDA GPU here (a CPU-only torch build, or no driver); use --device auto or cpu")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)


def random_shift(x: torch.Tensor, pixels: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by up to +-pixels (zero fill): cheap augmentation against small shifts."""
    if pixels == 0:
        return x
    n, c, h, w = x.shape
    padded = nn.functional.pad(x, (pixels,) * 4)
    dy, dx = torch.randint(0, 2 * pixels + 1, (2, n), generator=gen)
    rows = (torch.arange(h) + dy[:, None]).view(n, 1, h, 1).expand(n, c, h, w + 2 * pixels)
    cols = (torch.arange(w) + dx[:, None]).view(n, 1, 1, w).expand(n, c, h, w)
    return padded.gather(2, rows).gather(3, cols)


def augment(x: torch.Tensor, shift: int, noise: float, gen: torch.Generator) -> torch.Tensor:
    """Honest-input augmentation: small translations and pixel noise of a random strength up to `noise`
    (TrainConfig.augment_noise; not DivQAT's probe_noise, which shapes its off-manifold probes).

    The noise part matters for DivQAT: a model taught to diverge on noisy off-manifold inputs must
    still learn that an honest, slightly noisy image is not one of them.
    """
    x = random_shift(x, shift, gen)
    if noise > 0:
        x = x + noise * torch.rand(len(x), 1, 1, 1, generator=gen) * torch.randn(x.shape, generator=gen)
    return x


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Loss,
    epochs: int,
    lr: float,
    batch_size: int = 64,
    seed: int = 0,
    teacher: Optional[nn.Module] = None,
    shift: int = 2,
    noise: float = 0.0,
    on_epoch: Optional[Callable[[int], None]] = None,
    desc: str = "train",
    device: torch.device = torch.device("cpu"),
) -> list[float]:
    """Adam with a cosine schedule; returns seconds per epoch. `on_epoch(i)` runs before epoch i.

    The model (and teacher) train on `device`; batches are drawn and augmented on the CPU, with the
    CPU generator, so a seed gives the same batches on any device. Both stay on `device` afterwards.
    """
    gen = seed_everything(seed)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    if teacher is not None:
        teacher.to(device).eval()
    times = []
    bar = tqdm(range(epochs), desc=desc, unit="epoch", leave=False)
    for epoch in bar:
        if on_epoch is not None:
            on_epoch(epoch)
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            value = loss(augment(x[idx], shift, noise, gen).to(device), y[idx].to(device), model, teacher)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            sched.step()
            total += value.item() * len(idx)
        times.append(time.perf_counter() - start)
        bar.set_postfix(loss=f"{total / len(x):.4f}")
    return times


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (predict_logits(model, x).argmax(1) == y).float().mean().item()
