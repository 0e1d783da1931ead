"""One training loop for every phase (fp32 teacher, QAT, DivQAT); the loss is the pluggable part, the data a split read batch by batch."""

from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from edgeguard.data import Split
from edgeguard.errors import EdgeguardError
from edgeguard.runtime.preprocess import Normaliser
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


class SplitBatches(torch.utils.data.Dataset):
    """A split as torch's DataLoader reads it: a whole batch per fetch (one fancy index of an array,
    or one decode per file in a worker process), normalised as the deployed model normalises."""

    def __init__(self, split: Split, norm: Normaliser):
        self.split, self.norm = split, norm

    def __len__(self) -> int:
        return len(self.split)

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        i = np.asarray(idx)
        return torch.from_numpy(self.norm(self.split.images(i))), torch.from_numpy(np.asarray(self.split.y[i]))


def _batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The DataLoader's collate step: `__getitems__` already returned a batch (module level: workers pickle it)."""
    return batch


class Shuffled:
    """Batches of indices in a fresh order per epoch, drawn from the training generator when the epoch
    starts: the same draws, in the same order, as indexing an array, whatever the number of workers."""

    def __init__(self, n: int, batch_size: int, gen: torch.Generator):
        self.n, self.batch_size, self.gen = n, batch_size, gen

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        # a generator: the order is drawn when the first batch is asked for (workers ask at the start)
        order = torch.randperm(self.n, generator=self.gen).tolist()
        for i in range(0, self.n, self.batch_size):
            yield order[i : i + self.batch_size]


def loader(split: Split, norm: Normaliser, batches: Iterable[list[int]], workers: int = 0, seed: int = 0) -> DataLoader:
    """(normalised images, labels) batch by batch; `workers` processes decode ahead of the model.

    The loader gets its own generator (its workers' base seed is drawn from it), so it never draws
    from torch's global generator, which DivQAT's probes use.
    """
    return DataLoader(
        SplitBatches(split, norm), batch_sampler=batches, collate_fn=_batch, num_workers=workers,
        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip


def fit(
    model: nn.Module,
    data: Split,
    norm: Normaliser,
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
    workers: int = 0,
    device: torch.device = torch.device("cpu"),
) -> list[float]:
    """Adam with a cosine schedule; returns seconds per epoch. `on_epoch(i)` runs before epoch i.

    Augmentation runs here on each loaded batch, on the CPU with the seeded generator that also
    orders the epochs: what a seed trains depends neither on `workers`, which only decode files
    ahead, nor on `device`, where the model (and teacher) train and stay afterwards.
    """
    gen = seed_everything(seed)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    order = Shuffled(len(data), batch_size, gen)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs * len(order), 1))
    batches = loader(data, norm, order, workers, seed)
    if teacher is not None:
        teacher.to(device).eval()
    times = []
    bar = tqdm(range(epochs), desc=desc, unit="epoch", leave=False)
    for epoch in bar:
        if on_epoch is not None:
            on_epoch(epoch)
        model.train()
        start = time.perf_counter()
        total = 0.0
        # a bar updated by hand: tqdm.auto wrapping the loader would start its iterator twice (two orders drawn)
        steps = tqdm(total=len(order), desc=f"epoch {epoch + 1}", unit="batch", leave=False, disable=len(order) < 100)
        for x, y in batches:
            value = loss(augment(x, shift, noise, gen).to(device), y.to(device), model, teacher)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            sched.step()
            total += value.item() * len(x)
            steps.update()
        steps.close()
        times.append(time.perf_counter() - start)
        bar.set_postfix(loss=f"{total / len(data):.4f}")
    return times


@torch.no_grad()
def predict(model: nn.Module, data: Split, norm: Normaliser, workers: int = 0) -> np.ndarray:
    """The model's argmax label for each image of the split, read in order `data.batch_size` images at a time."""
    model.eval()
    size = data.batch_size
    sequential = [list(range(i, min(i + size, len(data)))) for i in range(0, len(data), size)]
    return torch.cat([model(x).argmax(1) for x, _ in loader(data, norm, sequential, workers)]).numpy()


def accuracy(model: nn.Module, data: Split, norm: Normaliser, workers: int = 0) -> float:
    """The share of the split the model's argmax labels right."""
    return float(np.mean(predict(model, data, norm, workers) == data.y))
