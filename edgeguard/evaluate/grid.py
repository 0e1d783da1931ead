"""The evaluation grid: {victims} x {defense stacks} x {query sources} x {soft, argmax} x {budgets} x {seeds}.

Victims are trained and exported on demand (a finished run or export is reused), every attack
queries the exported int8 ONNX model through the defense stack, and finished cells are stored as
they finish, so an interrupted grid resumes where it stopped.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from edgeguard.evaluate.cells import Cell, ServedVictim, rob
from edgeguard.evaluate.store import CellStore
from edgeguard.manifest import MANIFEST
from edgeguard.runtime import DeployedModel


@dataclass
class Victim:
    name: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class GridSpec:
    dataset: str = "digits"
    model: str = "small-cnn"
    victims: list[Victim] = field(default_factory=lambda: [Victim("qat", "qat"), Victim("divqat", "divqat")])
    defenses: list[str] = field(default_factory=lambda: ["none", "reverse_sigmoid(beta=1.0,gamma=0.2)"])
    sources: list[str] = field(default_factory=lambda: ["pool", "natural"])
    labels: list[str] = field(default_factory=lambda: ["soft", "argmax"])
    budgets: list[int] = field(default_factory=lambda: [100, 500, 1000])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    thief_steps: int = 250
    threads: int = 1


def prepare_victim(spec: GridSpec, victim: Victim, seed: int, runs_dir: Path, export_dir: Path) -> tuple[Path, dict]:
    """Train and export one victim unless a finished run and export already exist."""
    from edgeguard.export.pipeline import export_run
    from edgeguard.train.run import TrainConfig, load_run, train_run

    name = f"{spec.dataset}-{spec.model}-{victim.name}-s{seed}"
    run_dir = runs_dir / name
    if (run_dir / "metrics.json").exists():
        run = load_run(run_dir)
    else:
        cfg = TrainConfig(dataset=spec.dataset, model=spec.model, method=victim.method, method_options=victim.options, seed=seed, threads=spec.threads, runs_dir=str(runs_dir), name=name)
        run = train_run(cfg)
    folder = export_dir / name
    if not (folder / MANIFEST).exists() or not (folder / "model.int8.onnx").exists():
        folder = export_run(run_dir, export_dir, int8=True).folder
    return folder, run.metrics


def run_grid(spec: GridSpec, out: Path, runs_dir: Path, export_dir: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Compute every missing cell; returns {"victims": per-run metrics, "cells": all stored rows}."""
    import torch

    from edgeguard.data import load_dataset

    torch.set_num_threads(spec.threads)
    data = load_dataset(spec.dataset)
    store = CellStore(out / "cells.jsonl")
    victims = {}
    groups = list(itertools.product(spec.victims, spec.seeds, spec.defenses, spec.sources))
    bar = tqdm(groups, desc="grid", unit="group")
    for victim, seed, defense, source in bar:
        cells = [Cell(victim.name, defense, source, labels, budget, seed) for labels in spec.labels for budget in spec.budgets]
        key = (victim.name, seed)
        if key not in victims:
            victims[key] = prepare_victim(spec, victim, seed, runs_dir, export_dir)
        todo = [c for c in cells if c.key not in store.done]
        if not todo:
            continue
        bar.set_postfix_str(f"{victim.name} s{seed} {defense[:20]} {source}")
        served = ServedVictim(DeployedModel.load(victims[key][0]), defense)
        store.add(rob(served, data, todo, steps=spec.thief_steps))
    return {"victims": [{"victim": v, "seed": s, **m} for (v, s), (_, m) in victims.items()], "cells": store.rows}
