"""ShuffleNet V1 (groups 3) and V2 (1x) for CIFAR: 1x1 stem, three stride-2 stages, linear head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distill.models.base import FeatureNet, pool, stage_feature_names
from distill.models.registry import register


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """[N, g*c, H, W] -> interleave the g groups' channels."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleV1Unit(nn.Module):
    """Grouped 1x1, shuffle, depthwise 3x3, grouped 1x1; stride 2 concatenates an avg-pooled shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int) -> None:
        super().__init__()
        mid = cout // 4
        self.first_groups = 1 if cin == 24 else groups
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, mid, 1, groups=self.first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = channel_shuffle(F.relu(self.bn1(self.conv1(x))), self.first_groups)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.stride == 2:
            return F.relu(torch.cat([out, F.avg_pool2d(x, 3, stride=2, padding=1)], 1))
        return F.relu(out + x)


class ShuffleV2Unit(nn.Module):
    """Split channels in half, transform one half (1x1, depthwise 3x3, 1x1), concatenate, shuffle."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.conv1 = nn.Conv2d(half, half, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, half, 3, padding=1, groups=half, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv3 = nn.Conv2d(half, half, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept, changed = x.chunk(2, dim=1)
        out = F.relu(self.bn1(self.conv1(changed)))
        out = self.bn2(self.conv2(out))
        out = F.relu(self.bn3(self.conv3(out)))
        return channel_shuffle(torch.cat([kept, out], 1), 2)


class ShuffleV2Down(nn.Module):
    """Stride-2 unit: both branches downsample and each yields half the output channels."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cout // 2
        self.conv1 = nn.Conv2d(cin, cin, 3, stride=2, padding=1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv2 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, 3, stride=2, padding=1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return channel_shuffle(torch.cat([left, right], 1), 2)


class ShuffleNet(FeatureNet):
    """Shared skeleton: 1x1 conv stem to 24 channels, `layer1..3`, optional 1x1 head conv, linear."""

    feature_names = stage_feature_names(3)

    def __init__(self, stages: list[nn.Sequential], head: int | None, width: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self.layer1, self.layer2, self.layer3 = stages
        self.has_head = head is not None
        if head is not None:
            self.conv2 = nn.Conv2d(width, head, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(head)
            width = head
        self.linear = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        f0 = F.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(f0)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        top = F.relu(self.bn2(self.conv2(f3))) if self.has_head else f3
        return [f0, f1, f2, f3, pool(top)]

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.linear(pooled)


@register("ShuffleV1")
def shufflenet_v1(num_classes: int) -> ShuffleNet:
    groups, cin, stages = 3, 24, []
    for cout, count in ((240, 4), (480, 8), (960, 4)):
        units = [ShuffleV1Unit(cin, cout - cin, 2, groups)]
        units += [ShuffleV1Unit(cout, cout, 1, groups) for _ in range(count - 1)]
        stages.append(nn.Sequential(*units))
        cin = cout
    return ShuffleNet(stages, head=None, width=cin, num_classes=num_classes)


@register("ShuffleV2")
def shufflenet_v2(num_classes: int) -> ShuffleNet:
    cin, stages = 24, []
    for cout, count in ((116, 3), (232, 7), (464, 3)):
        stages.append(nn.Sequential(ShuffleV2Down(cin, cout), *(ShuffleV2Unit(cout) for _ in range(count))))
        cin = cout
    return ShuffleNet(stages, head=1024, width=cin, num_classes=num_classes)
