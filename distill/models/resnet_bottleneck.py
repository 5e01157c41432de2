"""ResNet50 for CIFAR: ImageNet-style bottleneck stages (64..512 wide, x4 expansion) on a 3x3 stem."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distill.models.base import FeatureNet, init_kaiming, pool, stage_feature_names
from distill.models.registry import register

EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand, with a projection shortcut when the shape changes."""

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        cout = planes * EXPANSION
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class BottleneckResNet(FeatureNet):
    """Four bottleneck stages (strides 1, 2, 2, 2) after a stride-1 3x3 stem."""

    feature_names = stage_feature_names(4)

    def __init__(self, blocks: tuple[int, int, int, int], num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for index, (planes, count, stride) in enumerate(zip((64, 128, 256, 512), blocks, (1, 2, 2, 2)), 1):
            layers = []
            for i in range(count):
                layers.append(Bottleneck(cin, planes, stride if i == 0 else 1))
                cin = planes * EXPANSION
            setattr(self, f"layer{index}", nn.Sequential(*layers))
        self.linear = nn.Linear(512 * EXPANSION, num_classes)
        init_kaiming(self)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [F.relu(self.bn1(self.conv1(x)))]
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            feats.append(stage(feats[-1]))
        feats.append(pool(feats[-1]))
        return feats

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.linear(pooled)


@register("ResNet50")
def resnet50(num_classes: int) -> BottleneckResNet:
    return BottleneckResNet((3, 4, 6, 3), num_classes)
