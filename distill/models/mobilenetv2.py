"""MobileNetV2 for CIFAR at width 0.5, expansion 6 (the KD benchmark's 'MobileNetV2', a.k.a. mobile_half)."""
from __future__ import annotations

import torch
from torch import nn

from distill.models.base import FeatureNet, init_vgg_style, pool, stage_feature_names
from distill.models.registry import register

# (expansion, channels, blocks, stride) per group; expansion None means "the net's T".
GROUPS = ((1, 16, 1, 1), (None, 24, 2, 1), (None, 32, 3, 2), (None, 64, 4, 2),
          (None, 96, 3, 1), (None, 160, 3, 2), (None, 320, 1, 1))
# Feature taps after these block groups (stem first, pooled vector last).
TAPS = (1, 2, 4, 6)


def conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class InvertedResidual(nn.Module):
    """Pointwise expand, depthwise 3x3, linear pointwise project; residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        self.use_residual = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            *conv_bn_relu(cin, hidden, 1),
            *conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(FeatureNet):
    """Stride-2 stem, seven inverted-residual groups, 1x1 conv to 1280, linear head."""

    feature_names = stage_feature_names(len(TAPS))

    def __init__(self, expansion: int, width: float, num_classes: int) -> None:
        super().__init__()
        cin = int(32 * width)
        self.conv1 = nn.Sequential(*conv_bn_relu(3, cin, 3, stride=2))
        self.blocks = nn.ModuleList()
        for ratio, channels, count, stride in GROUPS:
            cout = int(channels * width)
            group = []
            for i in range(count):
                group.append(InvertedResidual(cin, cout, stride if i == 0 else 1, ratio or expansion))
                cin = cout
            self.blocks.append(nn.Sequential(*group))
        last = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = nn.Sequential(*conv_bn_relu(cin, last, 1))
        self.classifier = nn.Sequential(nn.Linear(last, num_classes))
        init_vgg_style(self)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = self.conv1(x)
        feats = [out]
        for index, group in enumerate(self.blocks):
            out = group(out)
            if index in TAPS:
                feats.append(out)
        feats.append(pool(self.conv2(out)))
        return feats

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(pooled)


@register("MobileNetV2")
def mobilenetv2_half(num_classes: int) -> MobileNetV2:
    return MobileNetV2(expansion=6, width=0.5, num_classes=num_classes)
