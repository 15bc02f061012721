"""PyTorch twins of convjax's networks, the peer of benchmarks/train_step.py.

Each twin has the same layers, parameter count (tests/test_bench.py checks it), BatchNorm
settings (eps 1e-5, PyTorch momentum 0.1 = Flax's 0.9), activations, pooling and
shortcuts as its convjax network (models/lenet.py, models/resnet.py), so a time ratio
compares implementations, not architectures. Importing this module imports torch: the harness
imports it only when `--peer torch` is asked for and torch is installed.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from benchmarks import airbench_twin


class LeCunTanh(nn.Module):
    """1.7159 tanh(2a/3), LeNet-5's activation (models.layers.lecun_tanh)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(2.0 * x / 3.0)


def lenet5(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """C1 6@5x5 > tanh > avgpool > C3 16@5x5 > tanh > avgpool > C5 120@5x5 > tanh > F6 84 >
    tanh > out (models.lenet.LeNet5): 61,706 parameters for 10 classes."""
    act = LeCunTanh
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5), act(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), act(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 5), act(), nn.Flatten(),
        nn.Linear(120, 84), act(), nn.Linear(84, num_classes))


def _conv(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Conv2d:
    """Bias-free k x k conv, padding k // 2 (models.resnet's convs before a norm)."""
    return nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A: every `stride`-th pixel, zero channels appended (models.resnet)."""

    def __init__(self, stride: int, extra: int):
        super().__init__()
        self.stride, self.extra = stride, extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))


def _shortcut(kind: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    if kind == "zero_pad":
        return ZeroPadShortcut(stride, c_out - c_in)
    return nn.Sequential(_conv(c_in, c_out, 1, stride), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1, self.bn1 = _conv(c_in, width, 3, stride), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = _conv(width, width, 3), nn.BatchNorm2d(width)
        self.shortcut = _shortcut(shortcut, c_in, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 > 3x3 (the stride, "v1.5") > 1x1 x4, as models.resnet.Bottleneck."""
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int, shortcut: str):
        super().__init__()
        c_out = width * 4
        self.conv1, self.bn1 = _conv(c_in, width, 1), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = _conv(width, width, 3, stride), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = _conv(width, c_out, 1), nn.BatchNorm2d(c_out)
        self.shortcut = _shortcut(shortcut, c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    """models.resnet.ResNet with its defaults (post-activation, BatchNorm, ReLU): the CIFAR
    stem (3x3 conv 16) with option A shortcuts, or the ImageNet stem (7x7/2 conv 64, 3x3/2
    max pool) with projection shortcuts."""

    def __init__(self, depths, block, *, cifar: bool, num_classes: int, in_channels: int):
        super().__init__()
        widths = (16, 32, 64) if cifar else (64, 128, 256, 512)
        shortcut = "zero_pad" if cifar else "projection"
        stem = [_conv(in_channels, widths[0], *((3, 1) if cifar else (7, 2))),
                nn.BatchNorm2d(widths[0]), nn.ReLU()]
        if not cifar:
            stem.append(nn.MaxPool2d(3, 2, padding=1))
        self.stem = nn.Sequential(*stem)
        blocks, c = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, depths)):
            for j in range(n):
                blocks.append(block(c, w, 2 if i > 0 and j == 0 else 1, shortcut))
                c = w * block.expansion
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(x.mean(dim=(2, 3)))


TWINS: dict[str, Callable[..., nn.Module]] = {
    "lenet5": lenet5,
    "resnet20_cifar": lambda num_classes=10, in_channels=3: ResNet(
        (3, 3, 3), BasicBlock, cifar=True, num_classes=num_classes, in_channels=in_channels),
    "resnet18": lambda num_classes=1000, in_channels=3: ResNet(
        (2, 2, 2, 2), BasicBlock, cifar=False, num_classes=num_classes,
        in_channels=in_channels),
    "resnet50": lambda num_classes=1000, in_channels=3: ResNet(
        (3, 4, 6, 3), Bottleneck, cifar=False, num_classes=num_classes,
        in_channels=in_channels),
    # the CIFAR speed run's network, so `bench` times it as it times the others
    "airbench94": lambda num_classes=10, in_channels=3: airbench_twin.Airbench(
        num_classes=num_classes, in_channels=in_channels),
}


def build(name: str, *, num_classes: int, in_channels: int) -> nn.Module:
    """The twin of convjax network `name` (KeyError names the ones there are)."""
    if name not in TWINS:
        raise KeyError(f"no PyTorch twin of {name!r}; twins: {', '.join(TWINS)}")
    return TWINS[name](num_classes=num_classes, in_channels=in_channels)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
