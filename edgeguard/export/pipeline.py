"""Export a run: write the model files, verify them against torch, record everything in the manifest.

A declarative table of formats (as in Ultralytics' exporter) says which precisions each format
supports and what it needs installed; unknown combinations fail before any work is done.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from edgeguard.bench import time_calls
from edgeguard.data.natural import natural_patches
from edgeguard.errors import EdgeguardError
from edgeguard.export import tflite
from edgeguard.export.calibrate import calibrate_monitor
from edgeguard.export.onnx import export_onnx, fused_ops, weight_dtypes
from edgeguard.files import ensure_dir, sha256_file
from edgeguard.manifest import MANIFEST, Manifest, ModelEntry
from edgeguard.runtime import DeployedModel
from edgeguard.train.quantize import describe
from edgeguard.train.loop import Normaliser
from edgeguard.train.run import Run, load_run


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    precisions: tuple[str, ...]
    write: Callable[[Run, torch.nn.Module, bool, Path], Path]  # (run, torch model exported, int8?, path)
    inspect: Callable[[Path], dict[str, Any]]  # what the file holds: "weights" per dtype, "runtime_ops", maybe "io"
    require: Callable[[], None] = lambda: None  # raises EdgeguardError when the format's packages are missing
    int8_notes: dict[str, str] = field(default_factory=dict)  # how this format carries the int8 scheme


def _write_onnx(run: Run, model: torch.nn.Module, int8: bool, path: Path) -> Path:
    return export_onnx(model, run.input_shape, path)


def _inspect_onnx(path: Path) -> dict[str, Any]:
    return {"weights": weight_dtypes(path), "runtime_ops": fused_ops(path)}


def _write_tflite(run: Run, model: torch.nn.Module, int8: bool, path: Path) -> Path:
    """int8: the eager int8 model itself, as a PT2E graph with its own integers (export/pt2e.py)."""
    from edgeguard.export.pt2e import to_pt2e

    shape = run.input_shape
    return tflite.export_tflite(to_pt2e(run.teacher, model, shape) if int8 else model, shape, path, int8)


FORMATS = {
    "onnx": Format("onnx", ".onnx", ("int8", "fp32"), _write_onnx, _inspect_onnx),
    "tflite": Format(
        "tflite",
        ".tflite",
        ("int8", "fp32"),
        _write_tflite,
        tflite.contents,
        tflite.require,
        int8_notes={
            "route": "the eager int8 model as a PT2E Q/DQ graph with its own weights, scales and zero points -> litert-torch",
            "activations": "int8 affine per-tensor [-128, 127]: the eager uint8 grid, zero point - 128",
        },
    ),
}


@dataclass
class ExportResult:
    folder: Path
    manifest: Manifest
    report: list[dict[str, Any]] = field(default_factory=list)


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    found = {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "python": platform.python_version()}
    for name in ("torchao", "litert-torch", "ai-edge-litert"):  # the TFLite route's, where installed
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def _manifest(run: Run, folder: Path) -> Manifest:
    """The existing manifest of this export folder (to add a format to it), or a new one."""
    m = run.metrics
    fresh = Manifest(
        name=run.dir.name, dataset=run.config.dataset, model=run.config.model,
        input_shape=m["input_shape"], mean=m["mean"], std=m["std"], classes=m["classes"],
        versions=_versions(), extra={"method": run.config.method, "run": str(run.dir)},
    )  # fmt: skip
    if not (folder / MANIFEST).exists():
        return fresh
    old = Manifest.load(folder)
    fresh.models = [e for e in old.models if (folder / e.file).exists()] if old.name == fresh.name else []
    return fresh


def export_run(run_dir: str | Path, out: str | Path = "export", int8: bool = True, formats: tuple[str, ...] = ("onnx",)) -> ExportResult:
    """Write `model.<precision><suffix>` for each format into out/<run name>/ and verify each file."""
    precision = "int8" if int8 else "fp32"
    for f in formats:
        if f not in FORMATS:
            raise EdgeguardError(f"unknown export format '{f}'; choose from: {', '.join(FORMATS)}")
        if precision not in FORMATS[f].precisions:
            raise EdgeguardError(f"format '{f}' does not support {precision}")
        FORMATS[f].require()
    run = load_run(run_dir)
    folder = ensure_dir(Path(out) / run.dir.name)
    manifest = _manifest(run, folder)
    model = run.int8() if int8 else run.teacher
    data = run.dataset()
    report = []
    for f in formats:
        fmt = FORMATS[f]
        path = fmt.write(run, model, int8, folder / f"model.{precision}{fmt.suffix}")
        info = fmt.inspect(path)
        io = {"io": info["io"]} if "io" in info else {}  # TFLite: int8 input and output, with scale and zero point
        quant = {**describe(run.config.backend), **fmt.int8_notes, **io} if int8 else {}
        entry = ModelEntry(path.name, f, precision, sha256_file(path), path.stat().st_size, quant)
        manifest.add(entry)
        manifest.save(folder)
        deployed = DeployedModel.load(folder, precision, f)
        row = {**verify(deployed, model, data.test.x, data.test.y, Normaliser(manifest.mean, manifest.std)), **info}
        entry.quantization = {**quant, "verified": row["parity"]} if int8 else {}
        entry.monitor = calibrate_monitor(deployed, data)  # thresholds of `edgeguard serve`'s monitor
        report.append(row)
    manifest.save(folder)
    return ExportResult(folder, manifest, report)


def verify(deployed: DeployedModel, reference: torch.nn.Module, x: np.ndarray, y: np.ndarray, norm: Normaliser) -> dict[str, Any]:
    """Accuracy, size, latency of the exported file, and parity with the torch model it came from.

    Parity is measured on the test split and on out-of-distribution natural patches: quantization
    ranges are calibrated on training data, so disagreements show up first where inputs leave it.
    """
    ood = natural_patches(500, deployed.input_shape, seed=1234)
    parity = {}
    for name, inputs in (("test", x), ("ood", ood)):
        with torch.no_grad():
            ref = reference.eval()(norm(torch.from_numpy(inputs))).numpy()
        got = deployed.logits(inputs)
        parity[name] = {
            "argmax_agreement": float((ref.argmax(1) == got.argmax(1)).mean()),
            "max_abs_diff": float(np.abs(ref - got).max()),
        }
    one = x[:1]
    times_ns = time_calls(lambda: deployed.logits(one), runs=200, warmup=1)
    return {
        "file": deployed.entry.file,
        "format": deployed.entry.format,
        "precision": deployed.entry.precision,
        "size_bytes": deployed.entry.size_bytes,
        "accuracy": float((deployed.logits(x).argmax(1) == y).mean()),
        "latency_ms_p50_batch1": float(np.median(times_ns) / 1e6),
        "parity": parity,
    }
