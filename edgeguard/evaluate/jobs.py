"""What a worker runs: one group of cells (a `Job`) robbed against its victim's export, and the
process pool that runs jobs on this machine. Below the grid (`grid.py`) and beside the Ray
executor (`cluster.py`): both import it, and it imports neither.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterator

from edgeguard.data import Dataset, load_dataset
from edgeguard.evaluate.cells import Cell, ServedVictim, rob
from edgeguard.manifest import Manifest
from edgeguard.runtime import DeployedModel
from edgeguard.runtime.preprocess import ImageSpec


@dataclass
class Job:
    """One group of cells to rob, as a worker process receives it."""

    export: str
    cells: list[Cell]
    steps: int
    threads: int
    transfer_dir: str | None
    transfer_dataset: str | None
    thief_model: str


def rob_job(job: Job, data: Dataset | None = None) -> list[dict[str, Any]]:
    """Rob one group; `data` is the job's dataset when it was shipped (Ray), else it is loaded here."""
    import torch

    torch.set_num_threads(job.threads)
    model = DeployedModel.load(job.export)
    return rob(ServedVictim(model, job.cells[0].defense), job_data(job) if data is None else data, job.cells, steps=job.steps, thief_model=job.thief_model)


def job_data(job: Job) -> Dataset:
    """What a job robs with: its victim's data (named and decoded by the export's manifest) and the thieves' transfer set."""
    m = Manifest.load(job.export)
    spec = ImageSpec.from_manifest(m.preprocessing, m.input_shape)
    return _load_dataset(m.dataset, m.extra.get("data_dir", "data"), spec=spec, transfer_dir=job.transfer_dir, transfer_dataset=job.transfer_dataset)


_load_dataset = lru_cache(maxsize=1)(load_dataset)  # every victim of a grid reads the same data: loaded once per worker process


@dataclass
class Executor:
    """Where groups are robbed: `run(jobs)` yields each job's rows as it finishes, in any order.

    The grid needs nothing else from a pool or a cluster, so both sit behind this one seam and
    `run_grid` (the store, resumption, progress) exists once.
    """

    run: Callable[[list[Job]], Iterator[list[dict[str, Any]]]]
    capacity: str  # what the progress bar shows: "2 processes", "ray: 8 CPUs, 1 GPU"


@contextmanager
def process_pool(workers: int) -> Iterator[Executor]:
    """This process for one worker; else a pool of fresh (spawned: no forked torch state) processes.

    Leaving early (an error, Ctrl-C) cancels the groups not yet started instead of robbing them all
    first: their rows would not be stored anyway.
    """
    if workers <= 1:
        yield Executor(lambda jobs: map(rob_job, jobs), "1 process")
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def run(jobs: list[Job]) -> Iterator[list[dict[str, Any]]]:
        return (future.result() for future in as_completed([pool.submit(rob_job, job) for job in jobs]))

    try:
        yield Executor(run, f"{workers} processes")
    finally:
        pool.shutdown(cancel_futures=True)
