"""`label_smoothing`: cross-entropy against labels smoothed by ε (Szegedy et al., 2016), the teacher regulariser
that Müller et al. (NeurIPS 2019) found to make teachers distil worse: a question a search can now answer."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from distill.errors import UserError
from distill.objectives import Batch, Objective, Terms
from distill.teachers.base import TeacherContext, TeacherObjectiveConfig, register_teacher_objective


@dataclass(frozen=True)
class LabelSmoothingConfig(TeacherObjectiveConfig):
    """CE against (1 - ε) · one-hot + ε / K."""

    eps: float = field(default=0.1, metadata={"help": "smoothing ε in [0, 1): the mass spread evenly over classes"})

    def check(self) -> None:
        if not 0.0 <= self.eps < 1.0:
            raise UserError(f"label_smoothing.eps must be in [0, 1), got {self.eps}")


class LabelSmoothingObjective(Objective):
    """The `ce` term with smoothed targets (torch's own `label_smoothing`)."""

    def __init__(self, model: torch.nn.Module, eps: float) -> None:
        super().__init__(model)
        self.eps = eps

    def forward(self, batch: Batch) -> tuple[torch.Tensor, Terms]:
        logits = self.model(batch.images)
        return logits, {"ce": F.cross_entropy(logits.float(), batch.labels, label_smoothing=self.eps)}


@register_teacher_objective("label_smoothing")
class LabelSmoothing:
    Config = LabelSmoothingConfig

    @staticmethod
    def build(config: LabelSmoothingConfig, context: TeacherContext) -> Objective:
        config.check()
        return LabelSmoothingObjective(context.model, config.eps)
