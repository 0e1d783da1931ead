"""LeNet as in the DivQAT authors' earlier MNIST work: conv 20-5, conv 50-5, fc 500."""

from __future__ import annotations

from torch import nn

from edgeguard.models.blocks import QuantizableNet


class LeNet(QuantizableNet):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 20, 5)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        side = ((image_size - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(50 * side * side, 500)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(500, num_classes)

    def body(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x))).flatten(1)
        return self.fc2(self.relu3(self.fc1(x)))

    def fuse_groups(self) -> list[list[str]]:
        return [["conv1", "relu1"], ["conv2", "relu2"], ["fc1", "relu3"]]
