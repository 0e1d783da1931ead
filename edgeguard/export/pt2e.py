"""The eager int8 model re-expressed as a PT2E quantize/dequantize graph: what litert-torch converts.

litert-torch reads torchao's PT2E form (float ops between quantize and dequantize nodes); our
product is an eager torch.ao.quantization QAT model. Instead of quantizing the trained weights a
second time (post-training calibration, a different int8 model) or training a second flow, this
builds the PT2E graph of the *same* int8 model: the float architecture holding the eager model's
dequantized int8 weights, and every quantize node pinned to the eager model's own scale and zero
point (weights per channel or per tensor as trained, activations per tensor). Eager activations are
uint8 [0, 255] and PT2E's are int8 [-128, 127]: the same grid with the zero point moved by 128.
docs/tflite.md has the measured parity with torch's eager int8 model.

Which eager module's output quantization a graph tensor carries is read from the `nn_module_stack`
torch.export records on each node; ops that keep their input's quantization (max and average pool,
flatten) are followed back to their input.
"""

from __future__ import annotations

import copy
import functools

import torch
from torch import fx, nn
from torch.ao.nn.quantized import QFunctional

from edgeguard.errors import EdgeguardError
from edgeguard.train.quantize import WEIGHT_RANGE

# FloatFunctional.add(_relu) / mul / cat are method calls, not forwards: torch.export files the op under
# the enclosing block, whose eager twin holds the QFunctional with the op's output quantization
FUNCTIONAL = (torch.ops.aten.add.Tensor, torch.ops.aten.mul.Tensor, torch.ops.aten.cat.default)
REQUANTIZING = FUNCTIONAL + (torch.ops.aten.hardswish.default,)
UINT8_TO_INT8 = -128  # eager activation zero points are uint8; PT2E's (and TFLite's) are int8
RELU6_GRID = (6 / 255, 0)  # hard-sigmoid's relu6(x + 3): [0, 6] on the eager uint8 grid


class HardSigmoidAsRelu6(nn.Module):
    """hard-sigmoid written as relu6(x + 3) * (1/6), the same function in ops TFLite has int8 kernels
    for (ADD with a fused RELU6, MUL; it has no int8 hard-sigmoid). MobileNetV3's squeeze-excitation
    gates are these. The eager int8 model rounds once, to the gate's fixed output grid; this form also
    rounds x + 3 to RELU6_GRID, at most half a step of 6/255 before the gate's 1/256 grid."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.relu6(x + 3.0) * (1.0 / 6.0)


def _hardsigmoid_output() -> tuple[float, int]:
    """The eager int8 hard-sigmoid's fixed output scale and zero point (torch's, for a [0, 1] range)."""
    from torch.ao.quantization.observer import default_fixed_qparams_range_0to1_observer

    observer = default_fixed_qparams_range_0to1_observer()
    return float(observer.scale), int(observer.zero_point)


def litert_quantizer():
    """litert-torch's own PT2E quantizer: it places the quantize nodes where its converter expects them."""
    from litert_torch.quantize.pt2e_quantizer import get_symmetric_quantization_config

    return _quantizer_class()().set_global(get_symmetric_quantization_config(is_per_channel=True))


@functools.cache
def _quantizer_class() -> type:
    """litert's quantizer, completed where it leaves ops of an eager int8 graph float.

    It groups chained adds (or muls) of one source into one partition and annotates only the
    partition's first output, so the second add of a residual chain stays float; it has no
    annotation for hardswish; and it gives a concatenation its first input's quantization, where
    the eager model requantizes every input to the concatenation's own. Each such op gets its own
    input and output quantization here, as the eager int8 model gives it.
    """
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer
    from litert_torch.quantize.pt2e_quantizer_utils import get_input_act_qspec, get_output_act_qspec
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    class CompletePT2EQuantizer(PT2EQuantizer):
        def annotate(self, model: fx.GraphModule) -> fx.GraphModule:
            model = super().annotate(model)
            inputs, output = get_input_act_qspec(self.global_config), get_output_act_qspec(self.global_config)
            for node in model.graph.nodes:
                if node.target in REQUANTIZING and (node.target == torch.ops.aten.cat.default or not node.meta.get("quantization_annotation")):
                    args = node.args[0] if node.target == torch.ops.aten.cat.default else node.args
                    node.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={a: inputs for a in args if isinstance(a, fx.Node)}, output_qspec=output, _annotated=True
                    )
            return model

    return CompletePT2EQuantizer


@functools.cache
def _pinned_class() -> type:
    """Built on first use: torchao is an export-side extra, absent from a training-only install."""
    from torchao.quantization.pt2e import ObserverBase

    class PinnedQParams(ObserverBase):
        """An observer that observes nothing: convert_pt2e gets the scale and zero point it was given."""

        def __init__(self, scale, zero_point, qscheme: torch.qscheme, quant_min: int, quant_max: int, ch_axis: int = 0):
            super().__init__(dtype=torch.int8)
            self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).reshape(-1))
            self.register_buffer("zero_point", torch.as_tensor(zero_point, dtype=torch.int32).reshape(-1))
            self.qscheme, self.ch_axis, self.quant_min, self.quant_max = qscheme, ch_axis, quant_min, quant_max

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

        def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
            return self.scale, self.zero_point

    return PinnedQParams


def float_twin(teacher: nn.Module, int8: nn.Module) -> nn.Module:
    """The teacher's architecture, fused as eager conversion fuses it, holding the int8 model's dequantized weights."""
    twin = copy.deepcopy(teacher).eval().fuse(qat=False)
    for name, m in list(twin.named_modules()):
        if isinstance(m, nn.Hardsigmoid):
            twin.set_submodule(name, HardSigmoidAsRelu6())
    modules = dict(twin.named_modules())
    for name, q in int8.named_modules():
        if not callable(getattr(q, "weight", None)):
            continue
        f = modules[name]
        f = f[0] if isinstance(f, nn.Sequential) else f  # fused ConvReLU2d / LinearReLU: the conv or linear first
        f.weight.data = q.weight().dequantize()
        if q.bias() is not None:
            f.bias = nn.Parameter(q.bias().detach().clone())
    return twin


def _owner(modules: dict[str, nn.Module], path: str) -> nn.Module | None:
    """The innermost quantized eager module at or above `path` (a fused one owns its inner relu), if any."""
    parts = path.split(".") if path else []
    for k in range(len(parts), 0, -1):
        m = modules.get(".".join(parts[:k]))
        if m is not None and hasattr(m, "scale"):
            return m
    return None


def _output_quantizer(modules: dict[str, nn.Module], node: fx.Node) -> tuple[float, int]:
    """The (scale, uint8 zero point) of the value of `node`: the eager module's that computes it."""
    start = node
    while True:
        if node.op == "placeholder":
            return _qparams(modules["quant"])
        stack = list((node.meta.get("nn_module_stack") or {}).values())
        path = stack[-1][0] if stack else ""
        if isinstance(modules.get(path), nn.Hardsigmoid):  # HardSigmoidAsRelu6's two steps
            return _hardsigmoid_output() if node.target == torch.ops.aten.mul.Tensor else RELU6_GRID
        owner = _owner(modules, path)
        if owner is not None:
            return _qparams(owner)
        adds = [c for c in modules[path].children() if isinstance(c, QFunctional)] if node.target in FUNCTIONAL and path in modules else []
        if len(adds) == 1:
            return _qparams(adds[0])
        if node.target in FUNCTIONAL or not node.args or not isinstance(node.args[0], fx.Node):
            raise EdgeguardError(
                f"cannot tell which quantization of the eager int8 model applies to '{node.name}' ({node.target}, "
                f"feeding '{start.name}'): the TFLite route does not know this model's int8 graph; export it to ONNX"
            )
        node = node.args[0]  # pooling, flatten: the input's quantization passes through


def _qparams(module: nn.Module) -> tuple[float, int]:
    return float(module.scale), int(module.zero_point)


def _pinned(modules: dict[str, nn.Module], observed: fx.Node, graph: fx.GraphModule) -> nn.Module:
    pinned = _pinned_class()
    lo, hi = WEIGHT_RANGE
    if observed.op == "get_attr":  # a weight: 'features.0.0.0.weight' -> eager 'features.0.0'
        owner = _owner(modules, observed.target.rsplit(".", 1)[0])
        if owner is None:  # a constant of HardSigmoidAsRelu6 (3 or 1/6): exact on its own grid
            bound = float(getattr(graph, observed.target).abs().max())
            return pinned(bound / 127, 0, torch.per_tensor_symmetric, -127, 127)
        w = owner.weight()
        if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            return pinned(w.q_per_channel_scales(), w.q_per_channel_zero_points(), torch.per_channel_symmetric, lo, hi, int(w.q_per_channel_axis()))
        return pinned(w.q_scale(), w.q_zero_point(), torch.per_tensor_symmetric, lo, hi)
    scale, zero_point = _output_quantizer(modules, observed)
    return pinned(scale, zero_point + UINT8_TO_INT8, torch.per_tensor_affine, -128, 127)


def to_pt2e(teacher: nn.Module, int8: nn.Module, input_shape: tuple[int, ...]) -> fx.GraphModule:
    """The eager int8 model `int8` (converted from a QAT copy of `teacher`) as a batch-1 PT2E int8 graph."""
    from torchao.quantization.pt2e import ObserverBase
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    example = (torch.zeros(1, *input_shape),)
    graph = torch.export.export(float_twin(teacher, int8), example).module()
    prepared = prepare_pt2e(graph, litert_quantizer())
    modules = dict(int8.named_modules())
    for node in prepared.graph.nodes:
        if node.op == "call_module" and isinstance(getattr(prepared, node.target), ObserverBase):
            setattr(prepared, node.target, _pinned(modules, node.args[0], prepared))
    converted = convert_pt2e(prepared, fold_quantize=False)
    # traced from an eval-mode twin, so inference semantics are in the graph; the flag says so to converters
    # (an exported graph refuses .eval(), hence the base class's method)
    return nn.Module.train(converted, False)
