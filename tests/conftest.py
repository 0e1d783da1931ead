"""Shared fixtures: one default run trained and exported once per session (the real pipeline)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def torch_threads():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


@pytest.fixture(scope="session")
def default_run(tmp_path_factory, torch_threads):
    """The README's default job: digits, small-cnn, x86 QAT, trained with the default settings."""
    from edgeguard.train.run import TrainConfig, train_run

    root = tmp_path_factory.mktemp("runs")
    return train_run(TrainConfig(runs_dir=str(root), threads=1))


@pytest.fixture(scope="session")
def default_export(default_run, tmp_path_factory):
    """Both precisions of the default run exported to ONNX; returns (folder, {precision: report row})."""
    from edgeguard.export.pipeline import export_run

    out = tmp_path_factory.mktemp("export")
    rows = {}
    for int8 in (False, True):
        result = export_run(default_run.dir, out, int8=int8)
        rows["int8" if int8 else "fp32"] = result.report[0]
    return result.folder, rows


@pytest.fixture(scope="session")
def grid_dirs(default_run, default_export, tmp_path_factory) -> tuple[Path, Path]:
    """(runs, export) folders in which the default run and its export are a grid's seed-0 QAT victim:
    a grid of that one victim trains and exports nothing."""
    runs, exports = tmp_path_factory.mktemp("grid-runs"), tmp_path_factory.mktemp("grid-export")
    (runs / "digits-small-cnn-qat-s0").symlink_to(default_run.dir)
    (exports / "digits-small-cnn-qat-s0").symlink_to(default_export[0])
    return runs, exports


@pytest.fixture(scope="session")
def divqat_run(tmp_path_factory, torch_threads):
    """DivQAT with its defaults, same data, seed and schedule as `default_run`."""
    from edgeguard.train.run import TrainConfig, train_run

    root = tmp_path_factory.mktemp("runs")
    return train_run(TrainConfig(method="divqat", runs_dir=str(root), threads=1))


@pytest.fixture(scope="session")
def divqat_export(divqat_run, tmp_path_factory):
    """The DivQAT run's int8 ONNX export: its report row (what export measured on the file)."""
    from edgeguard.export.pipeline import export_run

    return export_run(divqat_run.dir, tmp_path_factory.mktemp("export"), int8=True).report[0]
