"""The default: a small CNN for 28x28 inputs (~98k parameters with 1 channel, 10 classes)."""

from __future__ import annotations

from torch import nn

from edgeguard.models.blocks import ConvBNReLU, QuantizableNet


class SmallCNN(QuantizableNet):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
        super().__init__()
        self.features = nn.Sequential(
            ConvBNReLU(in_channels, 16), nn.MaxPool2d(2),
            ConvBNReLU(16, 32), nn.MaxPool2d(2),
            ConvBNReLU(32, 64), nn.MaxPool2d(2),
        )  # fmt: skip
        side = image_size // 8
        self.fc1 = nn.Linear(64 * side * side, 128)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(128, num_classes)

    def body(self, x):
        x = self.features(x).flatten(1)
        return self.fc2(self.relu(self.fc1(x)))

    def fuse_groups(self) -> list[list[str]]:
        return super().fuse_groups() + [["fc1", "relu"]]
