"""VGG with BatchNorm for CIFAR (vgg8, vgg11, vgg13, vgg16, vgg19): five conv blocks, one linear head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distill.models.base import FeatureNet, init_vgg_style, pool, stage_feature_names
from distill.models.registry import register

CONFIGS: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


def conv_block(widths: tuple[int, ...], cin: int) -> nn.Sequential:
    """[conv, BN, ReLU] per width without the final ReLU; the caller applies it (checkpoint layout)."""
    layers: list[nn.Module] = []
    for cout in widths:
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        cin = cout
    return nn.Sequential(*layers[:-1])


class VGG(FeatureNet):
    """Blocks 0-4 with 2x2 max-pools after blocks 0-2 (and 3 for 64px input), then global average pool."""

    feature_names = stage_feature_names(4)

    def __init__(self, config: tuple[tuple[int, ...], ...], num_classes: int) -> None:
        super().__init__()
        cin = 3
        for index, widths in enumerate(config):
            setattr(self, f"block{index}", conv_block(widths, cin))
            cin = widths[-1]
        self.classifier = nn.Linear(512, num_classes)
        init_vgg_style(self)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        large_input = x.shape[2] == 64
        f0 = F.relu(self.block0(x))
        f1 = F.relu(self.block1(F.max_pool2d(f0, 2)))
        f2 = F.relu(self.block2(F.max_pool2d(f1, 2)))
        f3 = F.relu(self.block3(F.max_pool2d(f2, 2)))
        f4 = F.relu(self.block4(F.max_pool2d(f3, 2) if large_input else f3))
        return [f0, f1, f2, f3, f4, pool(f4)]

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(pooled)


for _name, _config in CONFIGS.items():
    register(_name)(lambda num_classes, config=_config: VGG(config, num_classes))
