"""The evaluation grid: {victims} x {defense stacks} x {attacks x their query sources} x {soft, argmax} x {budgets} x {seeds}.

Victims are trained and exported on demand (a finished run or export is reused), every attack
queries the exported int8 ONNX model through the defense stack, and finished cells are stored as
they finish, so an interrupted grid resumes where it stopped. Groups of cells are robbed by an
`Executor`: a pool of processes on this machine (the default), or Ray tasks on a cluster
(`GridSpec.ray`, evaluate/cluster.py). Only this process writes the store.
"""

from __future__ import annotations

import itertools
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from edgeguard.attacks.sources import ATTACK_SOURCES
from edgeguard.attacks.thieves import HELD_OUT_THIEVES, TUNING_THIEF, TUNING_THIEVES
from edgeguard.errors import EdgeguardError
from edgeguard.evaluate.cells import THIEF_MODEL, Cell
from edgeguard.evaluate.jobs import Executor, Job, process_pool
from edgeguard.evaluate.store import CellStore
from edgeguard.files import atomic_write_json, read_json
from edgeguard.manifest import Manifest

GRID_FILE = "grid.json"  # beside cells.jsonl: what its cells were robbed from (claim_store)


@dataclass
class VictimRecipe:
    """How a victim is trained (its name in the grid, the method and its options), not how it answers
    (that is attacks.victim.Victim, the query protocol)."""

    name: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class GridSpec:
    dataset: str = "digits"
    model: str = "small-cnn"
    data_dir: str = "data"  # where the victims' dataset is (torchvision sets, imagefolder)
    transfer_dir: str | None = None  # a thief's own images: adds the `transfer` query source
    transfer_dataset: str | None = None  # transfer_dir holds this dataset (e.g. cifar100), not image files
    thief_model: str = THIEF_MODEL
    victims: list[VictimRecipe] = field(default_factory=lambda: [VictimRecipe("qat", "qat"), VictimRecipe("divqat", "divqat")])
    defenses: list[str] = field(default_factory=lambda: ["none", "reverse_sigmoid(beta=1.0,gamma=0.2)"])
    attacks: list[str] = field(default_factory=lambda: ["knockoff", "knockoff-adaptive", "jbda"])
    sources: list[str] = field(default_factory=lambda: ["pool", "natural"])
    labels: list[str] = field(default_factory=lambda: ["soft", "argmax"])
    budgets: list[int] = field(default_factory=lambda: [100, 500, 1000])  # random Knockoff's
    # knockoff-adaptive's and jbda's: they train surrogates while they query, several times a random
    # thief's cost per cell, so the default grid gives them one budget (docs/results.md)
    adaptive_budgets: list[int] = field(default_factory=lambda: [500])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    # held-out thieves (attacks.thieves), robbing where random Knockoff meets natural queries, at their budgets
    thieves: list[str] = field(default_factory=lambda: list(HELD_OUT_THIEVES))
    heldout_budgets: list[int] = field(default_factory=lambda: [500, 1000])
    thief_steps: int = 250
    threads: int = 1  # torch threads per worker (and CPUs each Ray task holds)
    workers: int = 2  # processes robbing groups at once, one per core of the 2-core machine the defaults are sized for
    ray: str | None = None  # rob on a Ray cluster instead: "local", "auto" (RAY_ADDRESS) or its address

    def __post_init__(self) -> None:
        unknown = [a for a in self.attacks if a not in ATTACK_SOURCES]
        if unknown:
            raise EdgeguardError(f"unknown attack(s) {', '.join(unknown)}; choose from: {', '.join(ATTACK_SOURCES)}")
        if self.transfer_dir is not None and "transfer" not in self.sources:
            self.sources = [*self.sources, "transfer"]
        if self.transfer_dir is None and "transfer" in self.sources:
            raise EdgeguardError("the 'transfer' query source needs the thief's images: pass --transfer-dir")
        extra = [t for t in self.thieves if t in TUNING_THIEVES and t != TUNING_THIEF]
        if extra:  # the report would file them under held-out thieves
            raise EdgeguardError(f"tuning-side thief(s) {', '.join(extra)} are for tuning (benchmarks/divqat_variants.py), not the grid's held-out section")

    def budgets_for(self, attack: str) -> list[int]:
        return self.budgets if attack == "knockoff" else self.adaptive_budgets


def groups(spec: GridSpec) -> list[tuple[VictimRecipe, list[Cell]]]:
    """The grid's cells in groups robbed together (one victim, seed, defense, attack and source each).

    An attack meets only the sources it can start from (`ATTACK_SOURCES`: JBDA its pool seeds,
    adaptive Knockoff natural photos), so no cell appears twice under two source names. Each
    held-out thief is a group of its own: it shares no query stream with another thief.
    """
    out = []
    for victim, seed, defense, attack in itertools.product(spec.victims, spec.seeds, spec.defenses, spec.attacks):
        for source in (s for s in spec.sources if s in ATTACK_SOURCES[attack]):
            cells = [Cell(victim.name, defense, source, labels, budget, seed, attack) for labels in spec.labels for budget in spec.budgets_for(attack)]
            out.append((victim, cells))
            if (attack, source) == ("knockoff", "natural"):
                for name in (t for t in spec.thieves if t != TUNING_THIEF):
                    out.append((victim, [Cell(victim.name, defense, source, labels, budget, seed, attack, name) for labels in spec.labels for budget in spec.heldout_budgets]))
    return out


def victim_run(dataset: str, model: str, victim: str, seed: int) -> str:
    """The run (and export) folder name under which the grid trains and finds a victim."""
    return f"{dataset}-{model}-{victim}-s{seed}"


def prepare_victim(spec: GridSpec, victim: VictimRecipe, seed: int, runs_dir: Path, export_dir: Path) -> tuple[Path, dict]:
    """Train and export one victim unless a finished run and export already exist.

    Returns the export folder and the victim's record: the run's metrics, and what export measured
    on the int8 file the thieves query (`verified`).
    """
    from edgeguard.export.pipeline import export_run
    from edgeguard.train.run import TrainConfig, load_run, train_run

    name = victim_run(spec.dataset, spec.model, victim.name, seed)
    run_dir = runs_dir / name
    cfg = TrainConfig(
        dataset=spec.dataset, model=spec.model, method=victim.method, method_options=victim.options, seed=seed,
        threads=spec.threads, data_dir=spec.data_dir, runs_dir=str(runs_dir), name=name,
    )  # fmt: skip
    if (run_dir / "metrics.json").exists():
        run = load_run(run_dir)
        trained, asked = run.config.spelled_out(), trained_as(spec, victim)
        if {"method": trained.method, "options": trained.method_options} != asked:
            raise EdgeguardError(
                f"{run_dir} was trained as {trained.method} {trained.method_options}, but the grid's victim '{victim.name}' is "
                f"{asked['method']} {asked['options']}; remove that run (and its export and cells) or use another --runs-dir"
            )
    else:
        run = train_run(cfg)
    folder = export_dir / name
    try:
        entry = Manifest.load(folder).entry("int8")
    except EdgeguardError:  # not exported yet, or without its int8 model
        folder = export_run(run_dir, export_dir, int8=True).folder
        entry = Manifest.load(folder).entry("int8")
    return folder, {**run.metrics, "verified": entry.verified}


def trained_as(spec: GridSpec, victim: VictimRecipe) -> dict[str, Any]:
    """The victim's method and its options spelled out, defaults included (`TrainConfig.spelled_out`):
    what a run folder or a store must have been trained with to stand for this victim."""
    from edgeguard.train.run import TrainConfig

    cfg = TrainConfig(dataset=spec.dataset, model=spec.model, method=victim.method, method_options=victim.options).spelled_out()
    return {"method": cfg.method, "options": cfg.method_options}


def identity(spec: GridSpec) -> dict[str, Any]:
    """What a stored cell's number depends on but its key leaves out: the victims' data, architecture
    and training (`trained_as`), the thieves' architecture, steps and images. Two grids with one
    identity may share a store."""

    def folder(path: str | None) -> str | None:
        return None if path is None else str(Path(path).resolve())

    return {
        "dataset": spec.dataset, "model": spec.model, "data_dir": folder(spec.data_dir) if spec.dataset == "imagefolder" else None,
        "thief_model": spec.thief_model, "thief_steps": spec.thief_steps, "transfer_dir": folder(spec.transfer_dir),
        "transfer_dataset": spec.transfer_dataset, "victims": {v.name: trained_as(spec, v) for v in spec.victims},
    }  # fmt: skip


def claim_store(spec: GridSpec, out: Path) -> None:
    """Record the grid's identity beside its store (GRID_FILE), or refuse a store another grid filled.

    Cells are keyed by victim name, defense, source, labels, budget, seed and thief only: without this
    check a grid whose `divqat` means other options (a changed default, a fresh --runs-dir) would
    resume from the old victims' cells and report them as its own. A store may gain victims."""
    path = out / GRID_FILE
    mine = identity(spec)
    if path.exists():
        stored = read_json(path)
        differ = [k for k in mine if k != "victims" and stored.get(k) != mine[k]]
        differ += [f"victim '{n}'" for n, v in mine["victims"].items() if stored["victims"].get(n, v) != v]
        if differ:
            raise EdgeguardError(
                f"{out} holds the cells of another grid: its {', '.join(differ)} {'is' if len(differ) == 1 else 'are'} not this one's "
                f"({path} says what it was); pass another --out, or remove that folder's cells.jsonl and grid.json"
            )
        mine["victims"] = {**stored["victims"], **mine["victims"]}
    atomic_write_json(path, mine)


def run_grid(spec: GridSpec, out: Path, runs_dir: Path, export_dir: Path) -> dict[str, Any]:
    """Compute every missing cell; returns {"victims": per-run metrics, "cells": all stored rows}.

    Victims are prepared first, here; then the groups still missing a cell are robbed by the
    executor (`spec.workers` processes, or Ray tasks), of `spec.threads` torch threads each. Each
    group's rows are stored as it finishes, so an interrupted grid loses only the groups in flight.
    Every cell seeds its own randomness: the rows do not depend on where or beside what they ran.
    The executor is started first, so a wrong cluster address fails before any victim is trained.
    """
    import torch

    torch.set_num_threads(spec.threads)
    claim_store(spec, out)
    store = CellStore(out / "cells.jsonl")
    with executor(spec) as robbers:
        victims: dict[tuple[str, int], tuple[Path, dict]] = {}
        jobs = []
        for victim, cells in groups(spec):
            key = (victim.name, cells[0].seed)
            if key not in victims:
                victims[key] = prepare_victim(spec, victim, key[1], runs_dir, export_dir)
            todo = [c for c in cells if c.key not in store.done]
            if todo:
                jobs.append(Job(str(victims[key][0]), todo, spec.thief_steps, spec.threads, spec.transfer_dir, spec.transfer_dataset, spec.thief_model))
        with tqdm(total=sum(len(j.cells) for j in jobs), desc=f"grid ({robbers.capacity})", unit="cell") as bar:
            for rows in robbers.run(jobs):
                store.add(rows)
                bar.update(len(rows))
    return {"victims": [{"victim": v, "seed": s, **m} for (v, s), (_, m) in victims.items()], "cells": store.rows}


def executor(spec: GridSpec) -> AbstractContextManager[Executor]:
    """The spec's executor: Ray when `spec.ray` names a cluster, else this machine's process pool."""
    if spec.ray is None:
        return process_pool(spec.workers)
    # Ray is an extra: imported only when asked for
    from edgeguard.evaluate.cluster import ray_cluster

    return ray_cluster(spec.ray)
