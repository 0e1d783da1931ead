"""Real-size models for the benchmarks: torchvision's quantizable networks through edgeguard's int8 route.

The default digits model does ~2 M multiply-accumulates per image, too few for int8 to pay; these
are the sizes where it should (ResNet-18: 1.8 G MACs at 224x224). `int8_pair` is the one place that
makes the pair of float and int8 modules: the zoo's wrapper of torchvision's quantizable model
(`models.torchvision_nets`), through training's own quantization route (`train.quantize`: fused for
QAT, per-channel int8 weights in [-64, 63] on x86, prepare_qat), calibration passes on
natural-image patches instead of training, convert. Weights are random (untrained): speed does not
depend on them, and every result made from them says so.

`real_size_export` writes an export folder `edgeguard bench` runs on: each format's fp32 and int8
file through the table's own writers, each format's peer quantizer of the same float network
(onnxruntime's `quantize_static`, LiteRT's PT2E PTQ) beside them, the torch modules, and each file's
argmax agreement with the fp32 file on the calibration images. Training side (torch, torchvision).
"""

from __future__ import annotations

import importlib
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeguard.data.natural import natural_patches
from edgeguard.errors import EdgeguardError
from edgeguard.files import sha256_file
from edgeguard.formats import DEFAULT, FORMATS
from edgeguard.manifest import Manifest, ModelEntry
from edgeguard.runtime import DeployedModel
from edgeguard.runtime.parity import compare
from edgeguard.runtime.preprocess import ImageSpec, Normaliser
from edgeguard.models import build_model
from edgeguard.train.quantize import convert_int8, describe, prepare_qat

IMAGENET_MEAN = [0.485, 0.456, 0.406]  # what torchvision's models are normalised with
IMAGENET_STD = [0.229, 0.224, 0.225]
CLASSES = 1000
CALIBRATION = 64  # natural-image patches: BN statistics, activation ranges, both peers' calibration, agreement
CALIBRATION_SEED = 77
BACKEND = "x86"
TORCH_FILES = {"fp32": "torch.fp32.pt", "int8": "torch.int8.pt"}  # TorchScript modules: torch_side loads them


def int8_pair(name: str, calibration: torch.Tensor, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(fp32, eager int8) modules of the zoo's `name` (torchvision's quantizable network), random weights; inputs normalised.

    The float model's BatchNorm statistics are set from the calibration images first (random weights
    with BN's initial statistics would make activations grow layer by layer), so that the int8 model
    quantizes exactly the fp32 model that is exported beside it. Then training's own route
    (`train.quantize.prepare_qat`, `convert_int8`) with calibration passes instead of training.
    """
    torch.manual_seed(seed)
    fp32 = build_model(name, tuple(calibration.shape[1:]), CLASSES).train()
    for m in fp32.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average over all calibration batches
    with torch.no_grad():
        for x in calibration.split(16):
            fp32(x)
    fp32.eval()
    qat = prepare_qat(fp32, BACKEND)
    qat.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)  # BN as in the fp32 model; observers still see the data
    for m in qat.modules():
        if isinstance(m, nn.Dropout):
            m.eval()  # a dropped-out classifier input would widen the logits' range past inference's
    with torch.no_grad():
        for x in calibration.split(16):
            qat(x)
    return fp32, convert_int8(qat, BACKEND)


def sqnr_db(reference: np.ndarray, logits: np.ndarray) -> float | None:
    """Signal-to-quantization-noise ratio of the logits, in dB (None: identical): with random weights the top
    classes are nearly tied, so argmax agreement is mostly noise and this is the steadier measure of fidelity."""
    noise = float(np.sum((reference.astype(np.float64) - logits) ** 2))
    return round(10 * np.log10(float(np.sum(reference.astype(np.float64) ** 2)) / noise), 2) if noise else None


def _entry(folder: Path, file: str, format: str, precision: str, quantization: dict[str, Any]) -> ModelEntry:
    path = folder / file
    return ModelEntry(file, format, precision, sha256_file(path), path.stat().st_size, quantization)


def _write(format: str, run: SimpleNamespace, model: nn.Module, int8: bool, path: Path) -> str | None:
    """The table's writer for `format`; the reason it cannot write this model here, or None."""
    try:
        FORMATS[format].exporter_module().write(run, model, int8, path)
    except (EdgeguardError, ImportError, AttributeError, RuntimeError, ValueError) as e:
        path.unlink(missing_ok=True)
        return f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    return None


def real_size_export(name: str, size: int, out: str | Path, formats: tuple[str, ...] = tuple(FORMATS), seed: int = 0) -> Path:
    """out/torchvision-<name>-<size>/: fp32 and int8 files of every format that can write them here, the peers, torch modules.

    Each file's argmax agreement (and max |difference| of logits) with the fp32 file of the default
    format on the calibration images is recorded in its entry's `verified`.
    """
    shape = (3, size, size)
    images = natural_patches(CALIBRATION, shape, seed=CALIBRATION_SEED)
    calibration = Normaliser(IMAGENET_MEAN, IMAGENET_STD)(images)
    fp32, int8 = int8_pair(name, torch.from_numpy(calibration), seed)
    folder = Path(out) / f"torchvision-{name}-{size}"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(
        name=folder.name, dataset="none (random weights, untrained; natural-image patches for calibration)",
        model=f"torchvision.models.quantization.{name}", input_shape=list(shape), mean=IMAGENET_MEAN, std=IMAGENET_STD,
        classes=[f"class{i}" for i in range(CLASSES)], preprocessing=ImageSpec.from_manifest({}, shape).to_manifest(),
        versions={m.__name__: m.__version__ for m in (torch, np)},
        extra={"untrained": True, "seed": seed, "calibration_images": len(images), "torch_modules": TORCH_FILES},
    )  # fmt: skip
    run = SimpleNamespace(input_shape=shape, teacher=fp32)  # what the table's writers read of a run
    ours = {**describe(BACKEND), "flow": "eager torch.ao.quantization QAT prepare + calibration passes (no training)"}
    skipped, peers = {}, []
    for fmt in (FORMATS[f] for f in formats):
        for precision, model in (("fp32", fp32), ("int8", int8)):
            file = fmt.filename(precision)
            reason = _write(fmt.name, run, model, precision == "int8", folder / file)
            if reason:
                skipped[f"{fmt.name} {precision}"] = reason
            else:
                manifest.add(_entry(folder, file, fmt.name, precision, ours if precision == "int8" else {}))
        module = importlib.import_module(fmt.exporter)
        if hasattr(module, "peer_int8"):  # this format's own post-training quantizer, if it has one
            file = f"model.peer-int8{fmt.suffix}"
            try:
                label, scheme = module.peer_int8(fp32, folder / fmt.filename("fp32"), calibration, folder / file)
            except (EdgeguardError, ImportError, RuntimeError, ValueError) as e:
                skipped[f"{fmt.name} peer"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
            else:
                peers.append((label, _entry(folder, file, fmt.name, "int8", scheme)))
    reference = DeployedModel.open(manifest, manifest.entry("fp32", DEFAULT), folder).logits(images)
    for entry in [*manifest.models, *(e for _, e in peers)]:
        logits = DeployedModel.open(manifest, entry, folder).logits(images)
        entry.verified = {"calibration_vs_fp32": {**compare(reference, logits), "sqnr_db": sqnr_db(reference, logits)}}
    example = torch.from_numpy(calibration[:1])
    for precision, module in (("fp32", fp32), ("int8", int8)):  # TorchScript: eager int8 modules do not unpickle
        torch.jit.save(torch.jit.trace(module, example), str(folder / TORCH_FILES[precision]))
    manifest.extra |= {"peers": [{"label": label, **asdict(e)} for label, e in peers], "not_written": skipped}
    manifest.save(folder)
    return folder
