"""ONNX exporter (a row of edgeguard.formats): the eager-converted int8 model (or the fp32 teacher) -> .onnx.

The TorchScript exporter (`dynamo=False`) is used on purpose: it is the one that understands the
packed int8 params of an eager-converted model and writes them as int8 QuantizeLinear /
DequantizeLinear graphs that onnxruntime fuses into QLinearConv / QGemm. The dynamo exporter fails
on those params (measured here with torch 2.14).
"""

from __future__ import annotations

import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from edgeguard.errors import EdgeguardError
from edgeguard.files import atomic_write

OPSET = 17
INT8_NOTES: dict[str, str] = {}  # the eager int8 model's own scheme (train.quantize.describe) is the file's


def write(run: Any, model: torch.nn.Module, int8: bool, path: Path) -> Path:
    """The exporter protocol of edgeguard.formats: `run` (train.run.Run) gives the input shape."""
    return export_onnx(model, run.input_shape, path)


def contents(path: Path) -> dict[str, Any]:
    """What the file holds: weight values per dtype, and the operators onnxruntime runs after fusion."""
    return {"weights": weight_dtypes(path), "runtime_ops": fused_ops(path)}


def export_onnx(model: torch.nn.Module, input_shape: tuple[int, ...], path: Path) -> Path:
    example = torch.zeros(2, *input_shape)  # batch >= 2 so no size-1 batch gets baked in

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter and jit.trace announce deprecations
            try:
                torch.onnx.export(
                    model.eval(), (example,), str(tmp), dynamo=False, opset_version=OPSET,
                    input_names=["input"], output_names=["logits"],
                    dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                )  # fmt: skip
            except torch.onnx.errors.SymbolicValueError as e:
                raise EdgeguardError(
                    "torch's ONNX exporter cannot write this int8 model: it has no quantized form of an op in it "
                    f"({str(e).splitlines()[0][:120]}); export it with --format tflite"
                ) from e

    return atomic_write(path, write)


def weight_dtypes(path: Path) -> dict[str, int]:
    """Number of stored weight values per dtype: proof that an int8 file really holds int8 weights."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    tensors = [numpy_helper.to_array(t) for t in graph.initializer]
    tensors += [numpy_helper.to_array(a.t) for n in graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"]
    counts: Counter[str] = Counter()
    for t in tensors:
        counts[str(t.dtype)] += t.size
    return dict(counts)


def fused_ops(path: Path) -> dict[str, int]:
    """The operators onnxruntime actually runs after its graph fusions (QLinearConv, QGemm, ...)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return dict(Counter(n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node))


def peer_int8(model: torch.nn.Module, fp32_file: Path, calibration: Any, path: Path) -> tuple[str, dict[str, Any]]:
    """onnxruntime's own int8 route for the same network, the peer edgeguard's file is timed against.

    `quantize_static` of the fp32 file as onnxruntime's documentation recommends it: `quant_pre_process`
    (shape inference, graph optimisation) first, QDQ format, per-channel int8 weights, uint8
    activations (its advice for x86), MinMax ranges from `calibration` (normalised images, the same
    ones edgeguard's int8 model was calibrated on). `model` is unused: this peer starts from the file.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(calibration[i : i + 16] for i in range(0, len(calibration), 16))

        def get_next(self) -> dict[str, Any] | None:
            x = next(self.rows, None)
            return None if x is None else {"input": x}

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_file), str(pre))
        atomic_write(path, lambda out: quantize_static(
            str(pre), str(out), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
        ))  # fmt: skip
    scheme = {"flow": "onnxruntime quantize_static (PTQ, MinMax) after quant_pre_process", "format": "QDQ",
              "weights": "int8 symmetric per-channel [-128, 127]", "activations": "uint8 affine per-tensor"}  # fmt: skip
    return "ORT quantize_static", scheme
