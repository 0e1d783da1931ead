"""TFLite exporter (a row of edgeguard.formats): litert-torch converts a PT2E int8 graph (or the fp32 teacher) to a .tflite file.

The int8 file is fully integer: int8 weights, int32 biases, int8 activations, and int8 input and
output tensors (litert-torch folds the first quantize and the last dequantize into the I/O), whose
scale and zero point `contents` reads back for the manifest. The batch is fixed at 1: litert-torch
cannot lower a dynamic batch through the flatten before the classifier (measured with 0.10), so the
runtime backend feeds rows one at a time. No TensorFlow is involved (onnx2tf would need 2.6 GB of it).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeguard.errors import EdgeguardError
from edgeguard.files import atomic_write

INT8_NOTES = {
    "route": "the eager int8 model as a PT2E Q/DQ graph with its own weights, scales and zero points -> litert-torch",
    "activations": "int8 affine per-tensor [-128, 127]: the eager uint8 grid, zero point - 128",
}
# litert-torch's progress bars and its converter's C++ info lines, unless the user asked for them
os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write(run: Any, model: torch.nn.Module, int8: bool, path: Path) -> Path:
    """The exporter protocol of edgeguard.formats. int8: the eager int8 model itself, as a PT2E graph
    with its own integers (export/pt2e.py); `run` (train.run.Run) gives its teacher and input shape."""
    from edgeguard.export.pt2e import to_pt2e

    shape = run.input_shape
    return export_tflite(to_pt2e(run.teacher, model, shape) if int8 else model, shape, path, int8)


def export_tflite(model: torch.nn.Module, input_shape: tuple[int, ...], path: Path, int8: bool, strict: bool = True) -> Path:
    """`model`: a PT2E int8 graph (`export.pt2e.to_pt2e`) when `int8`, else a float module in eval mode.

    strict: refuse an int8 file that kept float kernels (edgeguard's own files); a peer's file is kept as converted."""
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig

    from edgeguard.export.pt2e import litert_quantizer

    # the quantizer only tells the converter that the Q/DQ nodes are static; their values are the graph's
    config = QuantConfig(pt2e_quantizer=litert_quantizer()) if int8 else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.export and jax announce deprecations on every conversion
        converted = litert_torch.convert(model, (torch.zeros(1, *input_shape),), quant_config=config)

    def write(tmp: Path) -> None:
        tmp.write_bytes(converted.model_content())
        if int8 and strict:
            require_int8(tmp)  # before the rename: a refused file never takes the name model.int8.tflite

    return atomic_write(path, write)


def _names(enum: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def contents(path: Path) -> dict[str, Any]:
    """What the flatbuffer holds: constant values per dtype, operators, and the I/O tensors' quantization.

    Read from the file itself (ai-edge-litert's schema), not from an interpreter, so that what is
    counted is what was written, before any delegate rewrites it.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(Path(path).read_bytes(), 0)
    graph = model.subgraphs[0]
    dtypes, ops = _names(schema.TensorType), _names(schema.BuiltinOperator)
    weights: Counter[str] = Counter()
    for t in graph.tensors:
        data = model.buffers[t.buffer].data
        if data is not None and len(data):
            weights[dtypes[t.type].lower()] += int(np.prod(t.shape)) if t.shape is not None else 1
    codes = model.operatorCodes
    used = Counter(ops[max(codes[op.opcodeIndex].builtinCode, codes[op.opcodeIndex].deprecatedBuiltinCode)] for op in graph.operators)

    def io(index: int) -> dict[str, Any]:
        t = graph.tensors[index]
        q = t.quantization
        quantized = q is not None and q.scale is not None and len(q.scale) == 1
        return {
            "dtype": dtypes[t.type].lower(),
            "shape": [int(d) for d in t.shape],
            **({"scale": float(q.scale[0]), "zero_point": int(q.zeroPoint[0])} if quantized else {}),
        }

    return {
        "weights": dict(weights),
        "runtime_ops": dict(used),
        "io": {"input": io(graph.inputs[0]), "output": io(graph.outputs[0])},
    }


def require_int8(path: Path) -> None:
    """Refuse an 'int8' file that kept float weights or float kernels: that would be a mislabelled model."""
    info = contents(path)
    if "float32" in info["weights"] or "DEQUANTIZE" in info["runtime_ops"]:
        raise EdgeguardError(f"'{path}' is not fully int8 (constants {info['weights']}, ops {info['runtime_ops']}); please report this")


def peer_int8(model: torch.nn.Module, fp32_file: Path, calibration: np.ndarray, path: Path) -> tuple[str, dict[str, Any]]:
    """LiteRT's own int8 route for the same float network: litert-torch's PT2E quantizer, post-training.

    Symmetric per-channel weights, calibrated on `calibration` (normalised images, one at a time:
    the graph is exported at batch 1) and converted as `export_tflite` converts edgeguard's own
    int8 graphs. Used where edgeguard's route (export/pt2e.py) does not know a model's int8 graph.
    `fp32_file` is unused: this peer starts from the module.
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgeguard.export.pt2e import litert_quantizer

    shape = tuple(calibration.shape[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = torch.export.export(copy.deepcopy(model).eval(), (torch.zeros(1, *shape),)).module()
        prepared = prepare_pt2e(graph, litert_quantizer())
        with torch.no_grad():
            for x in calibration:
                prepared(torch.from_numpy(x[None]))
        converted = convert_pt2e(prepared, fold_quantize=False)
    export_tflite(torch.nn.Module.train(converted, False), shape, path, int8=True, strict=False)
    ops = contents(path)["runtime_ops"]
    scheme = {"flow": "litert-torch PT2EQuantizer PTQ (torchao prepare_pt2e / convert_pt2e)",
              "weights": "int8 symmetric per-channel", "activations": "int8 affine per-tensor",
              "float_islands": {k: ops[k] for k in ("DEQUANTIZE", "QUANTIZE") if k in ops}}  # fmt: skip
    return "LiteRT PTQ", scheme
