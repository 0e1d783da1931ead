"""What a run's metrics.json says about its deployed int8 model, measured in onnxruntime.

The divergence DivQAT trains for must survive conversion and export, so every number here comes
from the exported int8 ONNX file running on onnxruntime, compared with the fp32 teacher in torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeguard.data import Dataset
from edgeguard.data.natural import natural_patches
from edgeguard.data.shifts import shifted
from edgeguard.metrics import accuracy, compare
from edgeguard.runtime import softmax
from edgeguard.runtime.onnx import OnnxBackend

TRANSFER_SEED = 10_000  # distinct from the seeds attacks draw their queries with
TRANSFER_SIZE = 1000


def measure_int8(teacher: torch.nn.Module, onnx_path: Path, data: Dataset, norm) -> dict[str, Any]:
    backend = OnnxBackend(onnx_path)

    def int8_probs(x: np.ndarray) -> np.ndarray:
        return softmax(backend.logits(norm(torch.from_numpy(x)).numpy()))

    @torch.no_grad()
    def teacher_probs(x: np.ndarray) -> np.ndarray:
        return torch.softmax(teacher.eval()(norm(torch.from_numpy(x))), 1).numpy()

    transfer = natural_patches(TRANSFER_SIZE, data.input_shape, seed=TRANSFER_SEED)
    test_q = int8_probs(data.test.x)
    return {
        "int8_onnx_accuracy": accuracy(test_q, data.test.y),
        "test": compare(teacher_probs(data.test.x), test_q),
        "transfer": compare(teacher_probs(transfer), int8_probs(transfer)),
        "shifted_accuracy": {name: accuracy(int8_probs(x), data.test.y) for name, x in shifted(data.test.x).items()},
    }
