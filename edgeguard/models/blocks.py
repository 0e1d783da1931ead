"""Building blocks shared by the zoo, written so eager-mode fusion finds them by name."""

from __future__ import annotations

import torch
from torch import nn
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules, fuse_modules_qat

from edgeguard.errors import EdgeguardError


class ConvBNReLU(nn.Sequential):
    """conv -> bn -> relu, fused into one quantized conv by `fuse()` (names "0", "1", "2")."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, relu: bool = True):
        layers = [
            nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)

    def fuse_groups(self, prefix: str) -> list[list[str]]:
        return [[f"{prefix}.{i}" for i in range(len(self))]]


class QuantizableNet(nn.Module):
    """A float network between a QuantStub and a DeQuantStub.

    Subclasses define `body(x)` and `fuse_groups()`; `fuse(qat)` merges conv-bn(-relu) and
    linear-relu before QAT so that training sees the same folded graph the int8 kernels run.
    """

    def __init__(self) -> None:
        super().__init__()
        self.quant = QuantStub()
        self.dequant = DeQuantStub()

    def body(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x):
        return self.dequant(self.body(self.quant(x)))

    def fuse_groups(self) -> list[list[str]]:
        groups = []
        for name, mod in self.named_modules():
            if isinstance(mod, ConvBNReLU):
                groups += mod.fuse_groups(name)
        return groups

    def fuse(self, qat: bool = True) -> "QuantizableNet":
        fn = fuse_modules_qat if qat else fuse_modules
        return fn(self, self.fuse_groups(), inplace=True)

    def own_keys(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A state_dict as its authors named it, in this module's key names (the zoo's own: unchanged)."""
        return state

    def released_weights(self) -> dict[str, torch.Tensor]:
        """Published fp32 weights of this architecture; edgeguard's own models have none."""
        raise EdgeguardError("edgeguard's own models have no released weights; train one, or pass a state_dict with --teacher")
