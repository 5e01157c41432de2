"""The call contract every zoo network follows.

`model(x)` returns logits; `model(x, with_features=True)` returns `(logits, feats)` where
`feats` lists the stem output, each stage's output and the pooled vector, in network order
(the published zoo's `is_feat=True` list). Features are addressed by index or by name.
"""
from __future__ import annotations

import torch
from torch import nn

from distill.errors import UserError


def stage_feature_names(num_stages: int) -> tuple[str, ...]:
    """Names of a feature list with a stem, `num_stages` stages and a pooled vector."""
    return ("stem", *(f"stage{i}" for i in range(1, num_stages + 1)), "pool")


class FeatureNet(nn.Module):
    """Base class: subclasses implement `forward_features` (ending in the pooled vector) and `classify`."""

    feature_names: tuple[str, ...] = ()

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All features in network order; the last one is the pooled vector fed to the classifier."""
        raise NotImplementedError

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits from the pooled vector."""
        raise NotImplementedError

    def forward(
        self, x: torch.Tensor, with_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        feats = self.forward_features(x)
        logits = self.classify(feats[-1])
        return (logits, feats) if with_features else logits

    def feature_index(self, key: int | str) -> int:
        """Position in the feature list of `key`, an index (negative allowed) or a name such as 'stage2'."""
        count = len(self.feature_names)
        if isinstance(key, str) and not key.lstrip("-").isdigit():
            if key not in self.feature_names:
                raise UserError(
                    f"{type(self).__name__} has no feature {key!r}; "
                    f"choose one of: {', '.join(self.feature_names)}"
                )
            return self.feature_names.index(key)
        index = int(key)
        if not -count <= index < count:
            raise UserError(
                f"feature index {index} is out of range for {type(self).__name__} "
                f"({count} features: {', '.join(self.feature_names)})"
            )
        return index % count


def init_kaiming(module: nn.Module) -> None:
    """He-normal (fan_out) convolutions and unit/zero BatchNorm, as the CIFAR ResNets start."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_vgg_style(module: nn.Module, linear_std: float | None = 0.01) -> None:
    """N(0, sqrt(2/n)) convolutions, unit/zero BatchNorm, N(0, linear_std) linear (None keeps
    PyTorch's default linear weights): the VGG, MobileNetV2 and WRN start."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_std is not None:
                nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


def pool(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling to a flat vector (equals the zoo's fixed-size pools at 32x32 input)."""
    return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
