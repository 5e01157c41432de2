"""torchvision's ImageNet ResNet-18/34/50 under the zoo's contract, for ImageNet-sized teachers and students.

Each is torchvision's own `ResNet` class (its layers, its forward, its initialisation), so its state dict is
torchvision's: a `resnet34` weights file saved by torchvision code loads strictly, and the weights this project
writes load into `torchvision.models.resnet34()`. The features the distillers read (the stem after max-pooling,
each of the four stages, the pooled vector) are taken by forward hooks while torchvision's forward runs.
`distill.models.imagenet` registers them without importing torchvision until one is built.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from distill.models.base import FeatureNet, stage_feature_names

# (block, blocks per stage) exactly as torchvision.models.resnet18/34/50 build them.
DEPTHS: dict[int, tuple[type[nn.Module], list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
}


class TorchvisionResNet(FeatureNet, ResNet):
    """torchvision's ResNet; `with_features=True` also returns the stem, the four stages and the pooled vector."""

    feature_names = stage_feature_names(4)

    def __init__(self, depth: int, num_classes: int) -> None:
        block, layers = DEPTHS[depth]
        super().__init__(block, layers, num_classes=num_classes)
        self.captured: list[torch.Tensor] | None = None
        for module in (self.maxpool, self.layer1, self.layer2, self.layer3, self.layer4, self.avgpool):
            module.register_forward_hook(self.keep)

    def keep(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        """Forward hook: while features are asked for, record each feature module's output (pooled: flattened)."""
        if self.captured is not None:
            self.captured.append(torch.flatten(output, 1) if module is self.avgpool else output)

    def forward(self, x: torch.Tensor, with_features: bool = False):
        if not with_features:
            return ResNet.forward(self, x)
        self.captured = []
        try:
            logits = ResNet.forward(self, x)
            return logits, self.captured
        finally:
            self.captured = None

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self(x, with_features=True)[1]

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(pooled)
