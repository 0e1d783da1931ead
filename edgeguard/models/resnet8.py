"""ResNet-8 for CIFAR-sized inputs (3x32x32): three residual stages, ~78k parameters.

Residual additions go through `FloatFunctional.add_relu` so that eager-mode conversion turns them
into a quantized add+relu instead of leaving a float op in the middle of the int8 graph.
"""

from __future__ import annotations

from torch import nn
from torch.ao.nn.quantized import FloatFunctional

from edgeguard.models.blocks import ConvBNReLU, QuantizableNet


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = ConvBNReLU(cin, cout, stride=stride)
        self.conv2 = ConvBNReLU(cout, cout, relu=False)
        self.shortcut = ConvBNReLU(cin, cout, kernel=1, stride=stride, relu=False) if stride != 1 or cin != cout else nn.Identity()
        self.add = FloatFunctional()

    def forward(self, x):
        return self.add.add_relu(self.conv2(self.conv1(x)), self.shortcut(x))


class ResNet8(QuantizableNet):
    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32):
        super().__init__()
        self.stem = ConvBNReLU(in_channels, 16)
        self.layers = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def body(self, x):
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))
