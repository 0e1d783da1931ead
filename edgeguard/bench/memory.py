"""Peak memory of one model on one runtime, measured in a fresh process (Linux /proc).

What is measured, in a new Python process per model: the resident set after importing the
runtime library (numpy, onnxruntime / the TFLite package / torch), then the kernel's peak resident
set (VmHWM, reset to the current RSS first by writing 5 to /proc/self/clear_refs) over loading the
model and `calls` inferences at `batch`. `model_mb` = peak - after import: what the model and its
inference add to a process that already has the runtime. `peak_rss_mb` is the whole process, the
number a small board's RAM must hold. A fresh process keeps one model's allocations from counting
against another's.

    python -m edgeguard.bench.memory EXPORT FORMAT PRECISION [BATCH CALLS]   # prints one JSON line
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgeguard.errors import EdgeguardError
from edgeguard.formats import FORMATS


def status_kb(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if not match:
        raise EdgeguardError(f"/proc/self/status has no {field}: peak memory is measured on Linux only")
    return int(match.group(1))


def measure(folder: str, format: str, precision: str, batch: int, calls: int) -> dict[str, Any]:
    """In this process, which must be fresh: see the module docstring."""
    from edgeguard.manifest import Manifest

    # imported before the baseline, so that the library's own footprint is not counted as the model's;
    # the first of a format's runtime modules that imports (the one its backend prefers) is taken
    for name in FORMATS[format].runtime_modules if format in FORMATS else ("torch",):
        try:
            importlib.import_module(name)
            break
        except ImportError:
            continue
    manifest = Manifest.load(folder)
    if format in FORMATS:
        from edgeguard.runtime import DeployedModel

        load = lambda threads: DeployedModel.load(folder, precision, format, threads=threads).logits  # noqa: E731
    else:  # torch's own modules
        from edgeguard.bench.torch_side import torch_loader

        load = torch_loader(manifest, precision)
    x = np.random.default_rng(0).random((batch, *manifest.input_shape), dtype=np.float32)
    after_import = status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # peak := current, so only what follows counts
    logits = load(1)
    for _ in range(calls):
        logits(x)
    peak = status_kb("VmHWM")
    return {
        "format": format, "precision": precision, "batch": batch, "calls": calls,
        "import_rss_mb": round(after_import / 1024, 1), "peak_rss_mb": round(peak / 1024, 1), "model_mb": round((peak - after_import) / 1024, 1),
    }  # fmt: skip


def peak_memory(folder: str | Path, format: str, precision: str, batch: int = 64, calls: int = 20) -> dict[str, Any]:
    """`measure` in a fresh interpreter; a failure there comes back as an EdgeguardError."""
    args = [sys.executable, "-m", "edgeguard.bench.memory", str(folder), format, precision, str(batch), str(calls)]
    done = subprocess.run(args, check=False, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise EdgeguardError(f"memory measurement of {format} {precision} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    folder, format, precision, *rest = argv
    batch, calls = (int(v) for v in rest) if rest else (64, 20)
    print(json.dumps(measure(folder, format, precision, batch, calls)))


if __name__ == "__main__":
    main(sys.argv[1:])
