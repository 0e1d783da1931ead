"""The grid's groups as Ray tasks: `edgeguard evaluate --ray local|auto|ADDRESS` (docs/results.md).

The driver (the `edgeguard evaluate` process) trains the victims, submits one task per group and
stores each group's rows as its task finishes: the store stays the one source of truth, written by
the driver only. Nothing assumes a filesystem shared with the workers; each thing takes one path:

- the code: the driver's `edgeguard` package travels with the job (Ray's runtime_env `py_modules`),
  so every node robs with the driver's code; a node needs only the dependencies.
- a victim's export folder: its files' bytes, put once into the object store; a task writes them
  to a temporary folder and loads it as it would on disk (the manifest's sha256 check included).
- the dataset, when it is arrays (the built-in sets): loaded once by the driver and put into the
  object store; its arrays are read zero-copy by the tasks of a node. One that streams from image
  files (imagefolder, a --transfer-dir of images) is read by each task from the paths the driver
  used: they must be readable on every node (a shared filesystem, or the same copy on each).

A task whose worker process dies is retried by Ray (3 times, Ray's default for system failures);
it seeds its own randomness, so a retry gives the same rows.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import edgeguard
from edgeguard.data import ArraySplit, Dataset
from edgeguard.errors import EdgeguardError
from edgeguard.evaluate.jobs import Executor, Job, job_data, rob_job


def import_ray() -> ModuleType:
    """Ray, or one sentence saying how to install it (it is the `cluster` extra, not a dependency)."""
    try:
        import ray
    except ImportError as e:
        raise EdgeguardError('--ray needs Ray, which is not installed: pip install "edgeguard[cluster]"') from e
    return ray


@contextmanager
def ray_cluster(address: str) -> Iterator[Executor]:
    """Join the cluster at `address` ("auto": the one RAY_ADDRESS names) or, for "local", start one here.

    A local cluster is this machine's alone: it advertises and listens on loopback only (Ray's
    single-node mode, named for Windows and macOS where it is the default; read when Ray is first
    imported), starts no dashboard and sends no usage statistics.
    """
    local = address == "local"
    if local:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = import_ray()
    started = {"include_dashboard": False} if local else {}  # options of a new cluster only
    try:
        # log_to_driver=False: the workers' own progress bars, line by line, would bury the grid's bar;
        # a task's error still reaches the driver with its traceback, and Ray keeps the workers' logs
        ray.init(address=address, runtime_env={"py_modules": [edgeguard]}, log_to_driver=False, **started)
    except ConnectionError as e:
        raise EdgeguardError(
            f"cannot join the Ray cluster at '{address}': {str(e).rstrip('.')}. "
            "Start one with `ray start --head`, or use --ray local; a cluster that checks tokens also needs "
            "RAY_AUTH_MODE=token here (docs/results.md)"
        ) from e
    try:
        have = ray.cluster_resources()
        yield Executor(lambda jobs: _run(ray, jobs), f"ray: {have.get('CPU', 0):g} CPUs, {have.get('GPU', 0):g} GPUs")
    finally:
        ray.shutdown()


def resources(job: Job) -> dict[str, float]:
    """What a task holds while it runs: Ray starts no more tasks on a node than its resources fit.

    A GPU option would add `num_gpus` here, and Ray would then place the task on a node with one.
    """
    return {"num_cpus": job.threads}


def _run(ray: ModuleType, jobs: list[Job]) -> Iterator[list[dict[str, Any]]]:
    """Submit every job at once, then yield each one's rows as its task finishes."""
    task = ray.remote(rob_shipped)
    exports = {path: ray.put(_read_folder(Path(path))) for path in {j.export for j in jobs}}
    datasets = {path: job_data(j) for path, j in {j.export: j for j in jobs}.items()}  # one victim's data per export
    # victims that share their data share one object (job_data caches it): put once, not once per victim
    shipped = {id(d): ray.put(d) if _in_memory(d) else None for d in datasets.values()}
    pending = {task.options(**resources(j)).remote(j, exports[j.export], shipped[id(datasets[j.export])]): j for j in jobs}
    del exports, datasets, shipped  # from here each object lives as long as the tasks that read it
    while pending:
        [ref], _ = ray.wait(list(pending))
        job = pending.pop(ref)
        try:
            rows = ray.get(ref)
        except ray.exceptions.RayTaskError:
            raise  # the robbing code failed: its own error, with the worker's traceback
        except ray.exceptions.RayError as e:  # the cluster lost it (retries spent, node gone)
            cell = job.cells[0]
            raise EdgeguardError(
                f"Ray lost the task robbing {cell.victim} (seed {cell.seed}, {cell.defense}, {cell.attack} on {cell.source}): {e}. "
                "The rows finished so far are stored: run the same command again to compute the rest"
            ) from e
        yield rows


def rob_shipped(job: Job, folder: dict[str, bytes], data: Dataset | None) -> list[dict[str, Any]]:
    """A Ray task: rob `job` with its export folder's files materialised in a temporary folder, on the
    shipped dataset (None: one read from its files here)."""
    with tempfile.TemporaryDirectory(prefix="edgeguard-export-") as tmp:
        for name, blob in folder.items():
            (Path(tmp) / name).write_bytes(blob)
        return rob_job(replace(job, export=tmp), data)


def _read_folder(folder: Path) -> dict[str, bytes]:
    """An export folder's files (a manifest and its model files: small) by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _in_memory(data: Dataset) -> bool:
    """Arrays travel by value; image files stay where they are (a split of paths is no use elsewhere)."""
    return all(isinstance(split, ArraySplit) for split in (data.train, data.pool, data.test, data.transfer) if split is not None)
