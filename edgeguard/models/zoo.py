"""One table from model name to constructor; every model takes (in_channels, num_classes, image_size)."""

from __future__ import annotations

import functools
from typing import Callable

from edgeguard.errors import EdgeguardError
from edgeguard.models.blocks import QuantizableNet
from edgeguard.models.lenet import LeNet
from edgeguard.models.resnet8 import ResNet8
from edgeguard.models.small_cnn import SmallCNN
from edgeguard.models.torchvision_nets import ARCHS, TorchvisionNet

MODELS: dict[str, Callable[..., QuantizableNet]] = {
    "small-cnn": SmallCNN,
    "lenet": LeNet,
    "resnet8": ResNet8,
    **{arch: functools.partial(TorchvisionNet, arch) for arch in ARCHS},
}


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int) -> QuantizableNet:
    if name not in MODELS:
        raise EdgeguardError(f"unknown model '{name}'; choose one of: {', '.join(MODELS)}")
    channels, height, width = input_shape
    if height != width:
        raise EdgeguardError(f"models expect square images, got {height}x{width}")
    return MODELS[name](in_channels=channels, num_classes=num_classes, image_size=height)
