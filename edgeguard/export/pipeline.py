"""Export a run: write the model files, verify them, calibrate the monitor, then write the manifest once.

The export folder is the only hand-off from training to the device, so this is the one place that
writes model files and measures them: each file is checked as the device will run it (through
`DeployedModel`, sha256 included) against the torch model it came from, and the manifest is saved
atomically only after every file passed. Formats come from the table in edgeguard.formats;
unknown combinations fail before any work is done.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeguard.bench.timing import installed_versions, time_calls
from edgeguard.data import Dataset
from edgeguard.data.natural import natural_patches
from edgeguard.data.shifts import shifted
from edgeguard.errors import EdgeguardError
from edgeguard.export.monitor_thresholds import calibrate_monitor
from edgeguard.files import ensure_dir, sha256_file
from edgeguard.formats import DEFAULT, FORMATS, get_format
from edgeguard.manifest import MANIFEST, Manifest, ModelEntry
from edgeguard.metrics import accuracy
from edgeguard.metrics import compare as compare_probabilities
from edgeguard.runtime import DeployedModel, softmax
from edgeguard.runtime.parity import TEST_SAMPLE, compare, parity_inputs
from edgeguard.runtime.preprocess import ImageSpec
from edgeguard.train.quantize import describe
from edgeguard.train.run import Run, TrainConfig, load_run, train_run

TRANSFER_SEED = 10_000  # DivQAT's transfer numbers: distinct from the seeds attacks draw their queries with
TRANSFER_SIZE = 1000


@dataclass
class ExportResult:
    folder: Path
    manifest: Manifest
    report: list[dict[str, Any]] = field(default_factory=list)


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    found = {m.__name__: m.__version__ for m in (torch, onnx, onnxruntime)} | {"python": platform.python_version()}
    return found | installed_versions(("torchao", "litert-torch", "ai-edge-litert"))  # the TFLite route's, where installed


def _manifest(run: Run, folder: Path) -> Manifest:
    """The existing manifest of this export folder (to add a format to it), or a new one."""
    m = run.metrics
    fresh = Manifest(
        name=run.dir.name, dataset=run.config.dataset, model=run.config.model,
        input_shape=m["input_shape"], mean=m["mean"], std=m["std"], classes=m["classes"],
        preprocessing=ImageSpec.from_manifest(m.get("preprocessing", {}), m["input_shape"]).to_manifest(),
        versions=_versions(), extra={"method": run.config.method, "run": str(run.dir), "data_dir": run.config.data_dir},
    )  # fmt: skip
    if not (folder / MANIFEST).exists():
        return fresh
    old = Manifest.load(folder)
    fresh.models = [e for e in old.models if (folder / e.file).exists()] if old.name == fresh.name else []
    return fresh


def export_run(run_dir: str | Path, out: str | Path = "export", int8: bool = True, formats: tuple[str, ...] = (DEFAULT,)) -> ExportResult:
    """Write `model.<precision><suffix>` for each format into out/<run name>/, verify each, save the manifest."""
    precision = "int8" if int8 else "fp32"
    writers = {f: get_format(f, precision).exporter_module() for f in formats}  # every refusal before any work
    run = load_run(run_dir)
    folder = ensure_dir(Path(out) / run.dir.name)
    manifest = _manifest(run, folder)
    model = run.int8() if int8 else run.teacher
    data = run.dataset()
    report = []
    for name, writer in writers.items():
        path = writer.write(run, model, int8, folder / FORMATS[name].filename(precision))
        info = writer.contents(path)
        io = {"io": info["io"]} if "io" in info else {}  # TFLite: int8 input and output, with scale and zero point
        quant = {**describe(run.config.backend), **writer.INT8_NOTES, **io} if int8 else {}
        entry = ModelEntry(path.name, name, precision, sha256_file(path), path.stat().st_size, quant)
        deployed = DeployedModel.open(manifest, entry, folder)
        row = verify(deployed, model, run.teacher, data)
        entry.verified = {k: row[k] for k in ("accuracy", "parity", "teacher", "shifted_accuracy")}
        entry.monitor = calibrate_monitor(deployed, data, signature_mass=run.config.signature_mass if int8 else None)  # `edgeguard serve`'s monitor
        manifest.add(entry)
        report.append({**row, **info})
    manifest.save(folder)  # once, atomically, after every file passed
    return ExportResult(folder, manifest, report)


def verify(deployed: DeployedModel, reference: torch.nn.Module, teacher: torch.nn.Module, data: Dataset) -> dict[str, Any]:
    """What the exported file does, measured as the device runs it.

    Parity with the torch model it came from (runtime.parity: test images and natural patches);
    accuracy, under each benign shift too; and how far its answers are from the fp32 teacher's on
    the test split and on natural images (DivQAT's divergence must survive conversion and export).
    Accuracy and the teacher's distance cover the whole test split, batch by batch; parity and the
    shifts a seeded sample of TEST_SAMPLE images (all of a smaller split).
    """
    norm = deployed.normalise

    @torch.no_grad()
    def torch_logits(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
        return module.eval()(torch.from_numpy(norm(x))).numpy()

    def probabilities(x: np.ndarray) -> np.ndarray:
        return softmax(deployed.logits(x))

    def teacher_probabilities(x: np.ndarray) -> np.ndarray:
        return torch.softmax(torch.from_numpy(torch_logits(teacher, x)), 1).numpy()

    sample = data.test.sample(TEST_SAMPLE)
    inputs = parity_inputs(sample.x, deployed.input_shape)
    transfer = natural_patches(TRANSFER_SIZE, deployed.input_shape, seed=TRANSFER_SEED)
    test = data.test.apply(probabilities, desc="accuracy")
    one = sample.x[:1]
    times_ns = time_calls(lambda: deployed.logits(one), runs=200, warmup=1)
    return {
        "file": deployed.entry.file,
        "format": deployed.entry.format,
        "precision": deployed.entry.precision,
        "size_bytes": deployed.entry.size_bytes,
        "accuracy": accuracy(test, data.test.y),
        "latency_ms_p50_batch1": float(np.median(times_ns) / 1e6),
        "parity": {split: compare(torch_logits(reference, x), deployed.logits(x)) for split, x in inputs.items()},
        "teacher": {
            "test": compare_probabilities(data.test.apply(teacher_probabilities), test),
            "transfer": compare_probabilities(teacher_probabilities(transfer), probabilities(transfer)),
        },
        "shifted_accuracy": {name: accuracy(probabilities(x), sample.y) for name, x in shifted(sample.x).items()},
    }


def default_export(runs_dir: str | Path, out: str | Path, backend: str = "x86") -> Path:
    """The default run (digits, small-cnn, QAT, seed 0) exported in every format and precision, trained if missing.

    What a benchmark starts from on a fresh checkout; a format whose exporter cannot run here (e.g.
    TFLite without its converter) is left out, said once.
    """
    cfg = TrainConfig(runs_dir=str(runs_dir), backend=backend)
    folder = Path(out) / cfg.run_name
    if (folder / MANIFEST).is_file():
        return folder
    run = Path(runs_dir) / cfg.run_name
    if not (run / "metrics.json").is_file():
        train_run(cfg)
    for name, fmt in FORMATS.items():
        for precision in fmt.precisions:
            try:
                export_run(run, out, int8=precision == "int8", formats=(name,))
            except (EdgeguardError, ImportError) as e:
                print(f"not exported: {name} {precision}: {e}")
    return folder


def quickstart(cfg: TrainConfig, out: str | Path = "export") -> tuple[Run, list[dict[str, Any]], dict[str, float]]:
    """The whole pipeline on one config: train, export the fp32 teacher and the int8 model, compare them.

    Returns the run, both export rows (fp32 first) and int8 / fp32 ratios of size and latency with
    the accuracy difference in points.
    """
    run = train_run(cfg)
    fp32 = export_run(run.dir, out, int8=False).report[0]
    int8 = export_run(run.dir, out, int8=True).report[0]
    comparison = {
        "size": int8["size_bytes"] / fp32["size_bytes"],
        "accuracy_points": 100 * (int8["accuracy"] - fp32["accuracy"]),
        "latency": int8["latency_ms_p50_batch1"] / fp32["latency_ms_p50_batch1"],
    }
    return run, [fp32, int8], comparison
