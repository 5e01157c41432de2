"""Attention transfer (Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017;
RepDistiller's `attention`).

A feature map's attention is the channel mean of its activations to the power p, flattened and
L2-normalised; the student matches the teacher's on each chosen pair of maps (the larger pooled to
the smaller), and the squared differences' means are summed over pairs. RepDistiller's CIFAR-100
setting: every stage map, p 2, weight 1000, CE 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from distill.errors import UserError
from distill.losses.base import BuildContext, Distiller, DistillerConfig, StudentBatch, register_distiller

EVERY_STAGE = "stages"  # every feature map between the stem and the pooled vector, paired from the first


def attention_map(feature: torch.Tensor, p: float) -> torch.Tensor:
    """normalize(mean_c |f|^p) as [B, H*W]."""
    return F.normalize(feature.float().pow(p).mean(1).flatten(1), dim=1)


def attention_loss(student: torch.Tensor, teacher: torch.Tensor, p: float) -> torch.Tensor:
    """Mean squared difference of the two attention maps, the larger map pooled to the smaller size."""
    s_h, t_h = student.shape[2], teacher.shape[2]
    if s_h > t_h:
        student = F.adaptive_avg_pool2d(student, teacher.shape[2:])
    elif t_h > s_h:
        teacher = F.adaptive_avg_pool2d(teacher, student.shape[2:])
    return (attention_map(student, p) - attention_map(teacher, p)).pow(2).mean()


@dataclass(frozen=True)
class ATConfig(DistillerConfig):
    """Layers, exponent and weight (RepDistiller: feat[1:-1], p 2, -b 1000)."""

    layers: tuple[str, ...] = field(default=(EVERY_STAGE,), metadata={
        "help": f"feature names or indices on both nets ('{EVERY_STAGE}': every stage map, paired in order)"})
    p: float = field(default=2.0, metadata={"help": "exponent of the activations in the attention map"})
    weight: float = field(default=1000.0, metadata={"help": "weight of the summed attention terms"})


@register_distiller("at")
class AT(Distiller):
    """The `at` term: weight * sum over pairs of the attention-map loss. No trainable parts."""

    Config = ATConfig
    needs_features = True

    def __init__(self, config: ATConfig, pairs: list[tuple[int, int]]) -> None:
        super().__init__(config)
        self.pairs = pairs

    @classmethod
    def build(cls, config: ATConfig, context: BuildContext) -> AT:
        if config.layers == (EVERY_STAGE,):
            stages = range(1, min(len(context.teacher_shapes), len(context.student_shapes)) - 1)
            pairs = [(i, i) for i in stages]
        else:
            pairs = [context.feature_map_pair(key, "attention") for key in config.layers]
        if not pairs:
            raise UserError("attention transfer needs at least one feature map (--at-layers)")
        return cls(config, pairs)

    def forward(self, batch: StudentBatch) -> dict[str, torch.Tensor]:
        cfg = self.config
        losses = [attention_loss(batch.student_feats[s], batch.teacher_feats[t], cfg.p) for t, s in self.pairs]
        return {"at": cfg.weight * torch.stack(losses).sum()}
