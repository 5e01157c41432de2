"""Wide ResNets (wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2): pre-activation blocks, width factor k."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distill.models.base import FeatureNet, init_vgg_style, pool, stage_feature_names
from distill.models.registry import register


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice; the shortcut is a 1x1 conv of the activated input when widths differ."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.convShortcut = None if cin == cout else nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(activated))))
        shortcut = x if self.convShortcut is None else self.convShortcut(activated)
        return shortcut + out


class NetworkBlock(nn.Module):
    """One stage: `count` pre-activation blocks held under `.layer`, as the published checkpoints name it."""

    def __init__(self, count: int, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            *(PreActBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(count))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(FeatureNet):
    """WRN-depth-k: three stages of (depth - 4) / 6 blocks, widths 16k, 32k, 64k."""

    feature_names = stage_feature_names(3)

    def __init__(self, depth: int, widen: int, num_classes: int) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        count = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.block1 = NetworkBlock(count, widths[0], widths[1], 1)
        self.block2 = NetworkBlock(count, widths[1], widths[2], 2)
        self.block3 = NetworkBlock(count, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        init_vgg_style(self, linear_std=None)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        f0 = self.conv1(x)
        f1 = self.block1(f0)
        f2 = self.block2(f1)
        f3 = self.block3(f2)
        return [f0, f1, f2, f3, pool(F.relu(self.bn1(f3)))]

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(pooled)


for _depth, _widen in ((16, 1), (16, 2), (40, 1), (40, 2)):
    register(f"wrn_{_depth}_{_widen}")(
        lambda num_classes, depth=_depth, widen=_widen: WideResNet(depth, widen, num_classes)
    )
