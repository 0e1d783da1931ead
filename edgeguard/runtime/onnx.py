"""onnxruntime backend: a model file in, logits out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeguard.errors import EdgeguardError


class OnnxBackend:
    """Runs an .onnx file on onnxruntime's CPU provider with an explicit thread count.

    The thread count is explicit because the default (all cores, spinning) oversubscribes small
    boards and shared machines; 1 thread is fastest for these tiny models at batch 1.
    """

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise EdgeguardError(f"cannot load ONNX model '{path}': {e}") from e
        self.input_name = self.session.get_inputs()[0].name

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]
