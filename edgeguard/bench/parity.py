"""Cross-device parity: does a device answer exactly as the workstation did, model file by model file?

A reference (inputs + the logits of every model file of an export, computed where the export was
made) travels to the device with the export; the device runs the same files on the same inputs and
compares. Inputs: the dataset's test split and natural-image patches (out of distribution, where
int8 kernels that saturate differ first). The int8 qconfig keeps weights in [-64, 63] so that
kernels without dot-product instructions (Cortex-A72, Raspberry Pi 4) cannot saturate: there the
int8 answers should be bit-identical, which this measures rather than assumes.

Device side: numpy + the runtime. Only `write_reference` needs the training side (the data).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeguard.errors import EdgeguardError
from edgeguard.manifest import Manifest
from edgeguard.runtime import DeployedModel
from edgeguard.runtime.parity import TEST_SAMPLE, compare, parity_inputs

REFERENCE = "parity-reference.npz"  # written into the export folder, so it travels with it
SPLITS = ("test", "ood")


def runnable(folder: str | Path) -> tuple[dict[str, DeployedModel], dict[str, str]]:
    """Every model file of the export this machine can run, and why the others cannot."""
    models, skipped = {}, {}
    for e in Manifest.load(folder).models:
        try:
            models[e.file] = DeployedModel.load(folder, e.precision, e.format)
        except (EdgeguardError, ImportError) as err:  # e.g. the TFLite package is not installed here
            skipped[e.file] = str(err)
    return models, skipped


def write_reference(folder: str | Path, out: str | Path | None = None) -> Path:
    """Inputs (the export's own parity inputs: runtime.parity) and each runnable file's logits on
    them, as computed on this machine."""
    from edgeguard.data import victim_data

    manifest = Manifest.load(folder)
    inputs = parity_inputs(victim_data(manifest).test.sample(TEST_SAMPLE).x, tuple(manifest.input_shape))
    models, _ = runnable(folder)
    arrays = {f"inputs/{s}": x for s, x in inputs.items()}
    arrays |= {f"logits/{s}/{file}": m.logits(x) for file, m in models.items() for s, x in inputs.items()}
    path = Path(out) if out else Path(folder) / REFERENCE
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def check_parity(folder: str | Path, reference: str | Path | None = None) -> dict[str, Any]:
    """Each runnable model file against the reference, per split; `exact` means bit-identical everywhere."""
    path = Path(reference) if reference else Path(folder) / REFERENCE
    if not path.is_file():
        raise EdgeguardError(f"no parity reference at '{path}'; write one where the export was made: python benchmarks/aarch64/device.py reference EXPORT")
    ref = np.load(path)
    models, skipped = runnable(folder)
    results = {}
    for file, model in models.items():
        if f"logits/test/{file}" not in ref:
            skipped[file] = "not in the reference"
            continue
        splits = {s: compare(ref[f"logits/{s}/{file}"], model.logits(ref[f"inputs/{s}"])) for s in SPLITS}
        results[file] = {"precision": model.entry.precision, "format": model.entry.format, **splits, "exact": all(v["identical"] for v in splits.values())}
    return {"models": results, "skipped": skipped}
