"""Eager-mode quantization with torch.ao.quantization: fuse -> prepare_qat -> train -> convert.

The qconfig is ours, not torch's default, for one reason: the int8 model must give the *same*
answers on every target. torch's x86 default clips activations to 7 bits (reduce_range) while
onnxruntime's kernels use all 8, so the two disagree on out-of-distribution inputs; and 8-bit
activations times full-range 8-bit weights saturate the int16 pair-sums of u8*s8 kernels without
dot-product instructions (AVX2 fbgemm, a Raspberry Pi 4's Cortex-A72). Weights restricted to
[-64, 63] with full 8-bit activations keep 255*64*2 < 2**15, exact on all of them, for a
negligible accuracy cost on these models.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from typing import Iterator

import torch
from torch.ao.quantization import (
    FakeQuantize,
    FusedMovingAvgObsFakeQuantize,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    QConfig,
)

from edgeguard.errors import EdgeguardError
from edgeguard.models.blocks import QuantizableNet

BACKENDS = ("x86", "qnnpack")
WEIGHT_RANGE = (-64, 63)


def qat_qconfig(backend: str) -> QConfig:
    """x86: per-channel weights; qnnpack (ARM): per-tensor weights. Both 8-bit activations."""
    if backend not in BACKENDS:
        raise EdgeguardError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
    activation = FusedMovingAvgObsFakeQuantize.with_args(
        observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8, reduce_range=False
    )
    per_channel = backend == "x86"
    # Weights take the unfused FakeQuantize: its scale is the observer's own (`calculate_qparams`), the one
    # `convert` writes into the int8 model. The fused kernel computes weights' qparams its own way: ~0.8%
    # off per channel, and an asymmetric zero point (-64 or 63) for a channel whose weights share one sign
    # (common in depthwise 3x3), which TFLite's int8 kernels refuse. Trained that way, mobilenet_v2's int8
    # model disagreed with its fake-quantized self on 2.5% of answers (benchmarks/int8_fidelity.py).
    weight = FakeQuantize.with_args(
        observer=MovingAveragePerChannelMinMaxObserver if per_channel else MovingAverageMinMaxObserver,
        quant_min=WEIGHT_RANGE[0],
        quant_max=WEIGHT_RANGE[1],
        dtype=torch.qint8,
        qscheme=torch.per_channel_symmetric if per_channel else torch.per_tensor_symmetric,
    )
    return QConfig(activation=activation, weight=weight)


def describe(backend: str) -> dict:
    """The quantization scheme in words, for the manifest."""
    return {
        "flow": "eager torch.ao.quantization QAT",
        "backend": backend,
        "activations": "uint8 affine per-tensor [0, 255]",
        "weights": f"int8 symmetric {'per-channel' if backend == 'x86' else 'per-tensor'} {list(WEIGHT_RANGE)}",
    }


def set_engine(backend: str) -> None:
    torch.backends.quantized.engine = backend


def prepare_qat(model: QuantizableNet, backend: str) -> QuantizableNet:
    """A fused, fake-quantized copy of `model`, ready to train."""
    qat = copy.deepcopy(model).train()
    qat.fuse(qat=True)
    qat.qconfig = qat_qconfig(backend)
    set_engine(backend)
    with quiet():
        return torch.ao.quantization.prepare_qat(qat, inplace=True)


def freeze(qat: QuantizableNet) -> None:
    """Stop observers and BN statistics: the last QAT epochs fine-tune against fixed ranges."""
    qat.apply(torch.ao.quantization.disable_observer)
    qat.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)


def convert_int8(qat: QuantizableNet, backend: str) -> torch.nn.Module:
    """The true int8 model: quantized kernels, int8 weights, the ranges training ended with."""
    set_engine(backend)
    model = copy.deepcopy(qat).eval()
    model.apply(torch.ao.quantization.disable_observer)  # convert feeds each weight to its fake-quant once more
    with quiet():
        return torch.ao.quantization.convert(model, inplace=True)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """torch >= 2.10 announces that eager quantization moves to torchao; it still works, say it once in docs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*")
        yield
