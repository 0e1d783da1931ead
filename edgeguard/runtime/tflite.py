"""TFLite backend: a .tflite file in, float logits out (LiteRT's interpreter; numpy only, never torch)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from edgeguard.errors import EdgeguardError

INSTALL = "pip install 'edgeguard[tflite]' (ai-edge-litert)"


def interpreter_class() -> type:
    """ai-edge-litert's Interpreter, else tflite-runtime's (the older package, for boards ai-edge-litert lacks)."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    if importlib.util.find_spec("tflite_runtime") is None:
        raise EdgeguardError(f"serving a .tflite model needs a TFLite interpreter: {INSTALL}")
    try:
        from tflite_runtime.interpreter import Interpreter
    except Exception as e:  # a build for numpy 1 fails inside its extension under numpy 2, not always with ImportError
        hint = f"; tflite-runtime needs numpy<2 and this environment has numpy {np.__version__}" if int(np.__version__.split(".")[0]) >= 2 else ""
        raise EdgeguardError(f"tflite-runtime is installed but fails to import ({type(e).__name__}: {e}){hint}: {INSTALL}") from e
    return Interpreter


class Quantization:
    """A tensor's affine int8/uint8 mapping, or the identity for a float tensor."""

    def __init__(self, detail: dict):
        self.dtype = np.dtype(detail["dtype"])
        self.scale, self.zero_point = detail["quantization"]
        self.integer = np.issubdtype(self.dtype, np.integer)
        if self.integer and self.scale == 0:
            raise EdgeguardError(f"tensor '{detail['name']}' is {self.dtype} without a scale: not a quantized model edgeguard can feed")

    def quantize(self, x: np.ndarray) -> np.ndarray:
        if not self.integer:
            return x.astype(self.dtype, copy=False)
        info = np.iinfo(self.dtype)  # rint: round half to even, as torch's quantize_per_tensor
        return np.clip(np.rint(x / self.scale) + self.zero_point, info.min, info.max).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if not self.integer:
            return q.astype(np.float32, copy=False)
        return ((q.astype(np.float32) - self.zero_point) * self.scale).astype(np.float32)


class TFLiteBackend:
    """Runs a batch-1 .tflite file row by row, with an explicit thread count.

    The int8 I/O is quantized and dequantized here with the file's own scale and zero point, so that
    callers see float logits exactly as from onnxruntime. edgeguard's files have a batch of 1 (see
    export/tflite.py), hence the loop; one invoke costs microseconds. An interpreter is not
    thread-safe: one backend per thread (edgeguard serve answers on one event-loop thread).
    """

    def __init__(self, path: str | Path, threads: int = 1):
        interpreter = interpreter_class()
        try:
            self.interpreter = interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:  # the interpreter raises these for a bad file
            raise EdgeguardError(f"cannot load TFLite model '{path}': {e}") from e
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1 or inputs[0]["shape"][0] != 1:
            raise EdgeguardError(f"'{path}' is not an edgeguard classifier (one input of batch 1, one output); re-export it")
        self.input, self.output = inputs[0]["index"], outputs[0]["index"]
        self.input_q, self.output_q = Quantization(inputs[0]), Quantization(outputs[0])
        self.classes = int(outputs[0]["shape"][-1])

    def logits(self, x: np.ndarray) -> np.ndarray:
        q = self.input_q.quantize(x)
        out = np.empty((len(q), self.classes), self.output_q.dtype)
        for i in range(len(q)):
            self.interpreter.set_tensor(self.input, q[i : i + 1])
            self.interpreter.invoke()
            out[i] = self.interpreter.get_tensor(self.output)[0]
        return self.output_q.dequantize(out)
