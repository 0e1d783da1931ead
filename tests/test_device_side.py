"""The device side never imports torch: a Raspberry Pi installs numpy + onnxruntime only."""

import subprocess
import sys

import pytest

MODULES = ["edgeguard.runtime", "edgeguard.manifest", "edgeguard.defenses", "edgeguard.monitor", "edgeguard.serve", "edgeguard.client", "edgeguard.predict", "edgeguard.cli"]


@pytest.mark.parametrize("module", MODULES)
def test_imports_without_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, [m for m in sys.modules if m.startswith('torch')][:3]"
    subprocess.run([sys.executable, "-c", code], check=True)
