"""The PyTorch twin of models/airbench.py (`airbench94`), the peer of benchmarks/airbench_epoch.py.

Same layers and trainable parameter count (tests/test_airbench.py checks it): a 2x2 whitening
conv whose weight is frozen (requires_grad False) and whose bias trains, three blocks of
conv > max pool > BatchNorm (weight frozen at 1, bias trained; PyTorch momentum 0.6 = Flax's
0.4, eps 1e-12) > GELU > conv > BatchNorm > GELU, a 3x3 max pool, a bias-free linear head and
logits times 1/9. Importing this module imports torch.
"""

from __future__ import annotations

import torch
from torch import nn

WIDTHS = (64, 256, 256)


def _norm(features: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(features, momentum=0.6, eps=1e-12)
    bn.weight.requires_grad_(False)  # bias only, as convjax's use_scale=False
    return bn


class ConvGroup(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.norm1 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = _norm(c_out)
        self.pool, self.act = nn.MaxPool2d(2), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class Airbench(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3, widths=WIDTHS):
        super().__init__()
        c = 2 * 4 * in_channels
        self.whiten = nn.Conv2d(in_channels, c, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)  # fit from data in convjax; frozen in both
        groups = []
        for w in widths:
            groups.append(ConvGroup(c, w))
            c = w
        self.groups = nn.Sequential(*groups)
        self.pool, self.act = nn.MaxPool2d(3), nn.GELU()
        self.head = nn.Linear(c, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(self.act(self.whiten(x)))
        return self.head(self.pool(x).flatten(1)) / 9


def count_params(model: nn.Module) -> int:
    """Trainable parameters only: the frozen whitening weight and BatchNorm weights excluded."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
