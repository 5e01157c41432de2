"""Hinton's KD (Hinton et al., 2015): KL between temperature-softened teacher and student outputs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from distill.losses.base import Distiller, DistillerConfig, StudentBatch, positive, register_distiller


def kd_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(t/T) || softmax(s/T)) * T^2, averaged over the batch (Hinton et al., 2015)."""
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


@dataclass(frozen=True)
class KDConfig(DistillerConfig):
    """alpha * KD(T); with it the student's CE weight is 0.1 (RepDistiller: -r 0.1 -a 0.9, T 4)."""

    CE_WEIGHT: ClassVar[float] = 0.1

    alpha: float = field(default=0.9, metadata={"help": "weight of the KD term"})
    temperature: float = field(default=4.0, metadata={"help": "softening temperature T"})

    def check(self) -> None:
        positive("kd.temperature", self.temperature)


@register_distiller("kd")
class KD(Distiller):
    """Logit distillation: the `kd` term."""

    Config = KDConfig

    def forward(self, batch: StudentBatch) -> dict[str, torch.Tensor]:
        cfg = self.config
        return {"kd": cfg.alpha * kd_divergence(batch.student_logits, batch.teacher_logits, cfg.temperature)}
