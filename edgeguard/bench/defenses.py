"""What each post-hoc defense, and a typical stack, adds to a query, next to the model's own inference.

Each timing is the median of `reps` calls after `warmup` calls, in one process, on one onnxruntime
thread: batch 1 is the per-query cost, batch 64 the per-batch cost. The ratio is defense time over
the model's inference time (`DeployedModel.predict`: normalise, onnxruntime, softmax) at the same
batch. Inputs are uniform noise in [0, 1]: timings do not depend on the image, only on its shape;
the probabilities are the model's answers to them. adaptive_misinformation uses the model itself
as its misinformation model, a stand-in with a real model's cost. `synthetic_export` makes a tiny
random model for a machine with no export yet (and for tests); results from it say so.
Run by benchmarks/bench_defenses.py; benchmarks/load_test.py times the same STACK inside a server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeguard.bench.timing import median_us
from edgeguard.defenses import parse_stack
from edgeguard.files import sha256_file
from edgeguard.formats import DEFAULT, FORMATS
from edgeguard.manifest import Manifest, ModelEntry
from edgeguard.runtime import DeployedModel

BATCHES = (1, 64)
STACK = "reverse_sigmoid(beta=0.7, gamma=0.4) | topk(k=3) | round(decimals=2)"


def defense_specs(export: Path) -> list[str]:
    """Every defense alone (defaults, or the values a deployment would start from), then the stack."""
    return [
        "reverse_sigmoid",
        "topk(k=3)",
        "round(decimals=2)",
        "label_only",
        "high_confidence",
        "noise",
        f"adaptive_misinformation(tau=0.5, misinformation={json.dumps(str(export))})",
        "dcp(beta_gate=0.5)",
        "mad",
        STACK,
    ]


def synthetic_export(folder: Path, classes: int = 10, seed: int = 0, size: int = 32) -> Path:
    """A random conv net (conv 3x3 -> relu -> global pool -> linear) on (3, size, size) inputs as an export folder.

    fp32 ops under the int8 file name, so `DeployedModel.load` takes the same path as for a real
    export; results from it are labelled synthetic.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    init = [
        numpy_helper.from_array(rng.normal(0, 0.3, (16, 3, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(np.zeros(16, np.float32), "conv_b"),
        numpy_helper.from_array(rng.normal(0, 0.3, (16, classes)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(np.zeros(classes, np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "synthetic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", classes])],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    fmt = FORMATS[DEFAULT]
    path = folder / fmt.filename("int8")
    onnx.save(model, path)
    manifest = Manifest(
        name="synthetic",
        dataset="synthetic",
        model="synthetic-conv",
        input_shape=[3, size, size],
        mean=[0.5, 0.5, 0.5],
        std=[0.25, 0.25, 0.25],
        classes=[f"class{i}" for i in range(classes)],
    )
    manifest.add(ModelEntry(path.name, fmt.name, "int8", sha256_file(path), path.stat().st_size))
    manifest.save(folder)
    return folder


def time_defenses(export: Path, synthetic: bool, reps: int, warmup: int, seed: int) -> dict[str, Any]:
    model = DeployedModel.load(export, threads=1)
    rng = np.random.default_rng(seed)
    inputs = {b: rng.random((b, *model.input_shape), dtype=np.float32) for b in BATCHES}
    probs = {b: model.predict(x) for b, x in inputs.items()}
    inference = {b: median_us(lambda: model.predict(inputs[b]), reps, warmup) for b in BATCHES}
    rows = []
    for spec in defense_specs(export):
        stack = parse_stack(spec)
        us = {b: median_us(lambda: stack(probs[b], inputs[b]), reps, warmup) for b in BATCHES}
        rows.append(
            {
                "spec": stack.spec,
                "stack": len(stack) > 1,
                "us": {str(b): round(us[b], 2) for b in BATCHES},
                "us_per_query": {str(b): round(us[b] / b, 3) for b in BATCHES},
                "ratio_to_inference": {str(b): round(us[b] / inference[b], 4) for b in BATCHES},
            }
        )
    return {
        "what": "median overhead of each post-hoc defense vs the model's own inference (DeployedModel.predict)",
        "synthetic": synthetic,
        "export": None if synthetic else str(export),
        "model": {
            "name": model.manifest.name,
            "dataset": model.manifest.dataset,
            "model": model.manifest.model,
            "classes": model.num_classes,
            "input_shape": list(model.input_shape),
            "file": model.entry.file,
            "sha256": model.entry.sha256,
        },
        "settings": {"reps": reps, "warmup": warmup, "onnxruntime_threads": 1, "batches": list(BATCHES), "seed": seed},
        "inference_us": {str(b): round(inference[b], 2) for b in BATCHES},
        "defenses": rows,
    }


def render(result: dict[str, Any]) -> str:
    b1, b64 = (str(b) for b in BATCHES)
    label = "SYNTHETIC model" if result["synthetic"] else f"export {result['export']}"
    lines = [
        f"{label}: {result['model']['classes']} classes, input {result['model']['input_shape']}; "
        f"{result['machine']['processor']}, {result['machine']['cpu_count']} CPUs",
        f"inference: {result['inference_us'][b1]:.1f} us at batch 1, {result['inference_us'][b64]:.1f} us at batch 64",
        f"{'defense':<74} {'b1 us':>9} {'x inf':>7} {'b64 us':>9} {'x inf':>7}",
    ]
    for row in result["defenses"]:
        us, ratio = row["us"], row["ratio_to_inference"]
        lines.append(f"{row['spec'][:74]:<74} {us[b1]:>9.1f} {ratio[b1]:>7.3f} {us[b64]:>9.1f} {ratio[b64]:>7.3f}")
    return "\n".join(lines)
