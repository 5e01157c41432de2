"""The distiller interface: a typed config, what a distiller needs from a batch, and what it owns.

A distiller is one module in `distill/losses/`: a frozen `DistillerConfig` dataclass (its knobs, their
published defaults and help) and a `Distiller` that builds from it, registered together with
`@register_distiller("name")`. The student objective asks each distiller for its weighted terms,
named `<name>` or `<name>_<part>`, and sums them with the student's own cross-entropy.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from distill.errors import UserError
from distill.registry import Registry
from distill.typed_settings import Settings
from distill.losses.registry import DISTILLERS
from distill.models.base import FeatureNet

@dataclass(frozen=True)
class DistillerConfig(Settings):
    """Base of every distiller's knobs. `CE_WEIGHT` is the weight of the student's own cross-entropy that the
    method's paper and reference code use beside it; `with_values` applies a search trial's values."""

    CE_WEIGHT: ClassVar[float] = 1.0
    REGISTRY: ClassVar[Registry] = DISTILLERS


def positive(label: str, value: float) -> None:
    if not value > 0:
        raise UserError(f"{label} must be positive, got {value}")


@dataclass
class StudentBatch:
    """What one training step offers a distiller. Features are None unless a distiller asked for them;
    `indices` (each sample's position in the student's training set) likewise; `epoch` is the 1-based epoch as a
    0-d float tensor on the batch's device (a compiled step reads it as an input, not a constant)."""

    student_logits: torch.Tensor
    teacher_logits: torch.Tensor
    labels: torch.Tensor
    epoch: torch.Tensor
    student_feats: list[torch.Tensor] | None = None
    teacher_feats: list[torch.Tensor] | None = None
    indices: torch.Tensor | None = None


@dataclass(frozen=True)
class BuildContext:
    """What a distiller may size itself by: both nets, their feature shapes, the student's training labels."""

    teacher: FeatureNet
    student: FeatureNet
    teacher_shapes: list[torch.Size]
    student_shapes: list[torch.Size]
    train_labels: torch.Tensor  # labels of the student's training set, in dataset-index order

    def feature_pair(self, key: str) -> tuple[int, int]:
        """(teacher index, student index) of feature `key` (a name such as 'stage2' or an index)."""
        return self.teacher.feature_index(key), self.student.feature_index(key)

    def feature_map_pair(self, key: str, purpose: str) -> tuple[int, int]:
        """`feature_pair(key)`, checked to be a spatial map on both nets (not the pooled vector)."""
        pair = self.feature_pair(key)
        if len(self.teacher_shapes[pair[0]]) != 3 or len(self.student_shapes[pair[1]]) != 3:
            raise UserError(f"{purpose} layer {key!r} must be a feature map, not the pooled vector")
        return pair


class Distiller(nn.Module):
    """Base of every distiller: declares its needs, returns named weighted terms, owns its trainable parts."""

    Config: ClassVar[type[DistillerConfig]]
    needs_features: ClassVar[bool] = False
    needs_indices: ClassVar[bool] = False
    single_process_only: ClassVar[str] = ""  # why it cannot train data parallel (DDP); empty: it can

    def __init__(self, config: DistillerConfig) -> None:
        super().__init__()
        self.config = config

    @classmethod
    def build(cls, config: DistillerConfig, context: BuildContext) -> Distiller:
        """The distiller for `config`, its parts sized for these nets and this training set."""
        return cls(config)

    def forward(self, batch: StudentBatch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @property
    def lr_mult(self) -> float:
        """Learning-rate multiplier of this distiller's own parameters."""
        return 1.0

    def param_groups(self) -> list[dict]:
        """Optimiser groups of the distiller's own trainable parts (critics, regressors, embeddings)."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "lr_mult": self.lr_mult}] if params else []

    def step_bytes(self, batch_size: int) -> int:
        """What one training step of `batch_size` images allocates beyond the nets' own activations and this
        module's parameters (`distill.memory`'s estimate); nothing unless a distiller builds more per step."""
        return 0

    def extra_parameters(self) -> int:
        """Trainable parameters the distiller adds to the student's."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def register_distiller(name: str):
    """Class decorator: adds a Distiller (with its `Config`) to the registry under `name`."""

    def add(cls: type[Distiller]) -> type[Distiller]:
        if not (isinstance(cls, type) and issubclass(cls, Distiller) and hasattr(cls, "Config")):
            raise TypeError(f"{cls!r} must be a Distiller subclass with a Config")
        return DISTILLERS.register(name)(cls)

    return add


def published_ce_weight(configs: Mapping[str, DistillerConfig]) -> float:
    """The student's CE weight the chosen methods publish: the smallest of theirs (KD's 0.1 when KD is among
    them, since Hinton's KD mixes 0.1 CE with 0.9 KD; 1 for the others; 1 with no distiller)."""
    return min((type(config).CE_WEIGHT for config in configs.values()), default=1.0)
