"""torch's own fp32 and int8 modules as benchmark contenders, and DivQAT vs QAT training cost.

The reference a user would otherwise deploy: the run's fp32 teacher and its eager-converted int8
model, called as a torch deployment would (normalise, forward under inference_mode, to numpy).
Training side only: `edgeguard.bench.models` imports this module when torch is installed and asked for.
"""

from __future__ import annotations

import copy
import io
import statistics
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from edgeguard.bench.timing import machine
from edgeguard.errors import EdgeguardError
from edgeguard.manifest import Manifest
from edgeguard.runtime.preprocess import Normaliser
from edgeguard.train.loop import fit
from edgeguard.train.losses import DivQATLoss, Loss, cross_entropy
from edgeguard.train.quantize import prepare_qat
from edgeguard.train.run import load_run


def run_dir(manifest: Manifest) -> Path:
    path = manifest.extra.get("run")
    if not path or not Path(path, "metrics.json").is_file():
        raise EdgeguardError(
            f"export '{manifest.name}' names no finished run folder (manifest extra.run = {path!r}); "
            "torch's modules are rebuilt from it: run the benchmark where the run folder is, or pass --no-torch"
        )
    return Path(path)


Logits = Callable[[np.ndarray], np.ndarray]  # images (n, C, H, W) in [0, 1] -> logits


def torch_loader(manifest: Manifest, precision: str) -> Callable[[int], Logits]:
    """threads -> logits function of the run's fp32 teacher or converted int8 model (sets torch's threads)."""
    folder = run_dir(manifest)
    norm = Normaliser(manifest.mean, manifest.std)

    def load(threads: int) -> Logits:
        torch.set_num_threads(threads)
        run = load_run(folder)
        module = run.teacher if precision == "fp32" else run.int8()

        def logits(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(norm(x))).numpy()

        return logits

    return load


def state_dict_bytes(module: torch.nn.Module) -> int:
    """What torch.save writes for the module's weights: the torch counterpart of a model file's size."""
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.tell()


def torch_contenders(manifest: Manifest) -> list[tuple[str, str, int, Callable[[int], Logits]]]:
    """(precision, file, size in bytes, loader) of the run's fp32 teacher and its converted int8 model."""
    folder = run_dir(manifest)
    run = load_run(folder)
    return [
        ("fp32", f"{folder.name}/teacher.pt", (folder / "teacher.pt").stat().st_size, torch_loader(manifest, "fp32")),
        ("int8", f"{folder.name}/qat.pt, converted", state_dict_bytes(run.int8()), torch_loader(manifest, "int8")),
    ]


def training_cost(run: str | Path, epochs: int = 2, rounds: int = 2) -> dict[str, Any]:
    """Seconds per epoch of fp32, QAT and DivQAT (default options) on the run's data, on one thread.

    The three take turns, `rounds` times, `epochs` epochs each, from the run's own teacher: the
    ratios compare methods under the same load, unlike seconds recorded by runs trained apart.
    """
    torch.set_num_threads(1)
    r = load_run(run)
    data = r.dataset()
    norm = Normaliser(data.mean, data.std)
    cfg = r.config

    def train(name: str, model: torch.nn.Module, loss: Loss, lr: float, teacher: torch.nn.Module | None) -> list[float]:
        return fit(model, data.train, norm, loss, epochs, lr, cfg.batch_size, cfg.seed, teacher=teacher, shift=cfg.shift, noise=cfg.augment_noise, desc=f"cost {name}")

    methods = {  # each starts from the run's teacher, as `edgeguard train` does
        "fp32": lambda: train("fp32", copy.deepcopy(r.teacher), cross_entropy, cfg.lr, None),
        "qat": lambda: train("qat", prepare_qat(r.teacher, cfg.backend), cross_entropy, cfg.qat_lr, r.teacher),
        "divqat": lambda: train("divqat", prepare_qat(r.teacher, cfg.backend), DivQATLoss(), cfg.qat_lr, r.teacher),
    }
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, method in methods.items():
            seconds[name] += method()
    median = {name: round(statistics.median(s), 4) for name, s in seconds.items()}
    return {
        "run": str(run), "train_items": len(data.train), "batch_size": cfg.batch_size, "epochs_timed_per_method": epochs * rounds, "threads": 1,
        "seconds_per_epoch_median": median,
        "ratios": {"divqat/qat": round(median["divqat"] / median["qat"], 3), "qat/fp32": round(median["qat"] / median["fp32"], 3)},
        "machine": machine(),
    }  # fmt: skip
