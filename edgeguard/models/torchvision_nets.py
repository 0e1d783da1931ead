"""torchvision's quantizable classifiers (MobileNet V2/V3, ResNet-18/50, ShuffleNet V2) in edgeguard's zoo.

torchvision ships these with their own `fuse_model(is_qat)` and FloatFunctional adds, muls and
concatenations, so eager conversion turns every op into an int8 kernel. They are wrapped, not
rewritten: the torchvision module is `self.net`, edgeguard's QuantStub/DeQuantStub frame it (its
own stubs become identities) and edgeguard's qconfig quantizes it. `resnet18-cifar` is ResNet-18
with a 3x3 stride-1 stem and no max-pool: the DivQAT authors' victim for 32x32 inputs, which a
7x7 stride-2 stem and a max-pool would shrink to 8x8 before the first block.
"""

from __future__ import annotations

import types
from typing import Callable

import torch
from torch import nn
from torchvision.models import quantization as tvq

from edgeguard.errors import EdgeguardError
from edgeguard.models.blocks import QuantizableNet

# zoo name -> (torchvision's quantizable builder, its float weights enum in torchvision.models or None)
ARCHS: dict[str, tuple[Callable[..., nn.Module], str | None]] = {
    "mobilenet_v2": (tvq.mobilenet_v2, "MobileNet_V2_Weights"),
    "mobilenet_v3_large": (tvq.mobilenet_v3_large, "MobileNet_V3_Large_Weights"),
    "resnet18": (tvq.resnet18, "ResNet18_Weights"),
    "resnet18-cifar": (tvq.resnet18, None),
    "resnet50": (tvq.resnet50, "ResNet50_Weights"),
    "shufflenet_v2_x1_0": (tvq.shufflenet_v2_x1_0, "ShuffleNet_V2_X1_0_Weights"),
}
PREFIX = "net."  # torchvision's key names live under self.net


def shufflenet_block_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision's ShuffleNet V2 block, its channel split and shuffle written in ops torch's ONNX
    exporter has quantized forms of: `chunk(2)` becomes a reshape to (2, C/2) and two selects (the
    exporter has no quantized Slice), and the shapes are constants so that onnxruntime keeps the data
    movement on int8 (a shape read from a dequantized tensor keeps every Reshape on float). The same
    function: the halves and the shuffled order are torchvision's, element for element."""
    c, h, w = (int(s) for s in x.shape[1:])
    if self.stride == 1:
        halves = x.reshape(-1, 2, c // 2, h, w)
        out = self.cat.cat([halves.select(1, 0), self.branch2(halves.select(1, 1))], dim=1)
    else:
        out = self.cat.cat([self.branch1(x), self.branch2(x)], dim=1)
    c, h, w = (int(s) for s in out.shape[1:])  # a stride-2 block halved h and w
    return out.reshape(-1, 2, c // 2, h, w).transpose(1, 2).reshape(-1, c, h, w)


class TorchvisionNet(QuantizableNet):
    """One of torchvision's quantizable classifiers for `in_channels` x any square size -> `num_classes`.

    Every architecture here ends in adaptive average pooling, so the image size needs no change to
    the network; it is accepted for the zoo's common signature.
    """

    def __init__(self, arch: str, in_channels: int = 3, num_classes: int = 10, image_size: int = 224):
        super().__init__()
        builder, _ = ARCHS[arch]
        net = builder(weights=None, quantize=False, num_classes=num_classes)
        net.quant, net.dequant = nn.Identity(), nn.Identity()  # the frame's stubs quantize instead
        if arch == "resnet18-cifar":
            net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
        # the stem convolution: the only layer whose shape depends on the image's channels
        path, conv = next((name, m) for name, m in net.named_modules() if isinstance(m, nn.Conv2d))
        if in_channels != conv.in_channels:
            net.set_submodule(path, nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None))
        if arch.startswith("shufflenet"):
            for m in net.modules():
                if isinstance(m, tvq.shufflenetv2.QuantizableInvertedResidual):
                    m.forward = types.MethodType(shufflenet_block_forward, m)  # on the instance: fuse_model matches the type
        self.arch, self.net = arch, net

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def fuse(self, qat: bool = True) -> "TorchvisionNet":
        self.net.fuse_model(is_qat=qat)
        return self

    def own_keys(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """torchvision's key names ('features.0.0.weight') as this module's ('net.features.0.0.weight')."""
        return {k if k.startswith(PREFIX) else PREFIX + k: v for k, v in state.items()}

    def released_weights(self) -> dict[str, torch.Tensor]:
        """torchvision's released ImageNet fp32 weights (downloaded, or from torch's cache)."""
        import torchvision

        name = ARCHS[self.arch][1]
        if name is None:
            raise EdgeguardError(f"torchvision publishes no weights for {self.arch}; train it, or pass a state_dict with --teacher")
        return getattr(torchvision.models, name).DEFAULT.get_state_dict(progress=False)

