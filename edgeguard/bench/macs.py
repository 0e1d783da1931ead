"""Multiply-accumulates per image, counted from an ONNX graph: the work a model file asks of the CPU.

Counted after onnx's shape inference, so that weights behind DequantizeLinear (QDQ files) and every
output shape are known: Conv (grouped and depthwise included), ConvInteger, QLinearConv, Gemm, QGemm,
MatMul, MatMulInteger, QLinearMatMul. Other operators (adds, pooling, activations, quantize steps)
are counted as zero: they cost memory traffic, not MACs. Per image: the output's first dimension is
the batch. Needs the `onnx` package (the train extra); device side otherwise (no torch).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# operator -> (index of its weight input, index of its input activation), for the K (reduction) size
CONV = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
MATMUL = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "Gemm": (0, 1), "QGemm": (0, 3)}


def available() -> bool:
    """Whether the onnx package (the train extra, not a device's) is here: counting and the GEMM ceiling build on it."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        return False
    return True


def _shapes(model: Any) -> dict[str, list[int | None]]:
    """Every tensor's shape after shape inference (None for a symbolic dimension such as the batch)."""
    import onnx
    from onnx import numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    shapes: dict[str, list[int | None]] = {t.name: list(numpy_helper.to_array(t).shape) for t in graph.initializer}
    for v in [*graph.input, *graph.value_info, *graph.output]:
        if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape"):
            shapes.setdefault(v.name, [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim])
    return shapes


def _per_image(shape: list[int | None]) -> int:
    """Elements of one image's slice of a tensor whose first dimension is the batch."""
    if any(d is None for d in shape[1:]):
        raise ValueError(f"a non-batch dimension is unknown after shape inference: {shape}")
    return math.prod(shape[1:])


def count_macs(path: str | Path) -> dict[str, Any]:
    """{"macs": total per image, "by_op": {op_type: MACs}, "nodes": number of counted nodes}."""
    import onnx

    model = onnx.load(str(path))
    shapes = _shapes(model)
    by_op: dict[str, int] = {}
    nodes = 0
    for node in model.graph.node:
        if node.op_type in CONV:
            weight = shapes[node.input[CONV[node.op_type]]]  # (M, C / group, kH, kW)
            macs = _per_image(shapes[node.output[0]]) * math.prod(weight[1:])
        elif node.op_type in MATMUL:
            a_index, b_index = MATMUL[node.op_type]
            a = shapes[node.input[a_index]]
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            k = a[-2] if attrs.get("transA", 0) else a[-1]
            macs = _per_image(shapes[node.output[0]]) * k
        else:
            continue
        by_op[node.op_type] = by_op.get(node.op_type, 0) + macs
        nodes += 1
    return {"macs": sum(by_op.values()), "by_op": by_op, "nodes": nodes}
