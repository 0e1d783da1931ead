"""The defenses run on the device: importing and using them must not pull in torch."""

from __future__ import annotations

import subprocess
import sys

from .helpers import ROOT

PROGRAM = """
import sys
import numpy as np
import edgeguard.defenses as d
stack = d.parse_stack("reverse_sigmoid | topk(k=3) | round(decimals=2) | noise | dcp(beta_gate=0.5) | mad")
stack(np.full((4, 10), 0.1), np.zeros((4, 8)))
loaded = sorted(m for m in ("torch", "torchvision", "onnxruntime") if m in sys.modules)
assert not loaded, f"imported {loaded}"
"""


def test_defenses_import_and_run_without_torch_or_onnxruntime() -> None:
    run = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
