"""`mcmi`: CE − λ·CMI against class centroids of the starting teacher (Ye et al., ICLR 2024); see
`distill.losses.cmi` for the sign convention (λ > 0 maximises CMI)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn.functional as F

from distill.errors import UserError
from distill.objectives import MCMITeacherObjective, Objective
from distill.teachers.base import TeacherContext, TeacherObjectiveConfig, register_teacher_objective


@dataclass(frozen=True)
class MCMIConfig(TeacherObjectiveConfig):
    """The MCMI teacher objective CE - lam * CMI (lam > 0 maximises CMI)."""

    lam: float = field(default=0.25, metadata={"help": "CMI weight λ (> 0 maximises CMI; the paper's CIFAR-100 "
                                                       "value is 0.25 in this sign)"})
    centroid_ema: float | None = field(default=None, metadata={
        "help": "update the frozen class centroids from each batch with this EMA decay, e.g. 0.9999 (default: "
                "frozen)"})

    def check(self) -> None:
        if self.centroid_ema is not None and not 0.0 <= self.centroid_ema < 1.0:
            raise UserError(f"centroid EMA decay must be in [0, 1), got {self.centroid_ema}")


@register_teacher_objective("mcmi")
class MCMI:
    """CE - λ·CMI: the `ce` and `cmi` terms; the centroids come from one full-precision pass of the starting
    teacher over train (each data-parallel worker over its shard, the class sums added across workers)."""

    Config = MCMIConfig

    @staticmethod
    def build(config: MCMIConfig, context: TeacherContext) -> Objective:
        from distill.losses.cmi import MCMIObjective, class_means

        config.check()
        logits, labels = context.predict_train()
        centroids, _ = class_means(F.softmax(logits, dim=1), labels, context.num_classes, across_workers=True)
        return MCMITeacherObjective(context.model, MCMIObjective(config.lam, centroids, config.centroid_ema))
