"""Decoupled KD (Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022; mdistiller's DKD).

KD's KL splits into a target-class part (TCKD: the binary target-vs-rest distributions) and a
non-target part (NCKD: the distributions over the other classes), KD = TCKD + (1 - p_t) * NCKD per
sample, where p_t is the teacher's softened target probability. DKD weighs them freely,
alpha * TCKD + beta * NCKD (both times T^2), ramped up linearly over the first `warmup` epochs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from distill.errors import UserError
from distill.losses.base import Distiller, DistillerConfig, StudentBatch, positive, register_distiller


def dkd_parts(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
              temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (TCKD, NCKD), each a KL times T^2, unweighted; computed in log space, so no class is
    masked with a large constant."""
    target = F.one_hot(labels, student_logits.shape[1]).bool()
    log_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_t = F.log_softmax(teacher_logits.float() / temperature, dim=1)

    def binary(log_p: torch.Tensor) -> torch.Tensor:  # log [p_target, 1 - p_target]; a gather, no data-sized shape
        rest = torch.logsumexp(log_p.masked_fill(target, float("-inf")), dim=1)
        return torch.stack([log_p.gather(1, labels[:, None]).squeeze(1), rest], dim=1)

    bin_s, bin_t = binary(log_s), binary(log_t)
    tckd = (bin_t.exp() * (bin_t - bin_s)).sum(1)
    # Over the non-target classes, renormalised: log p_i - log(1 - p_target).
    cond_s, cond_t = log_s - bin_s[:, 1:], log_t - bin_t[:, 1:]
    nckd = torch.where(target, 0.0, cond_t.exp() * (cond_t - cond_s)).sum(1)
    return tckd * temperature**2, nckd * temperature**2


@dataclass(frozen=True)
class DKDConfig(DistillerConfig):
    """DKD's CIFAR-100 defaults (mdistiller configs/cifar100/dkd): CE 1, alpha 1, beta 8, T 4, 20 warm-up epochs."""

    alpha: float = field(default=1.0, metadata={"help": "weight of TCKD, the target-class term"})
    beta: float = field(default=8.0, metadata={"help": "weight of NCKD, the non-target-class term"})
    temperature: float = field(default=4.0, metadata={"help": "softening temperature T"})
    warmup: int = field(default=20, metadata={"help": "epochs over which the DKD terms ramp up linearly"})

    def check(self) -> None:
        positive("dkd.temperature", self.temperature)
        if self.warmup < 0:
            raise UserError(f"dkd.warmup must not be negative, got {self.warmup}")


@register_distiller("dkd")
class DKD(Distiller):
    """Terms `dkd_tckd` and `dkd_nckd`, each scaled by min(epoch / warmup, 1)."""

    Config = DKDConfig

    def forward(self, batch: StudentBatch) -> dict[str, torch.Tensor]:
        cfg = self.config
        ramp = torch.clamp(batch.epoch / cfg.warmup, max=1.0) if cfg.warmup else 1.0
        tckd, nckd = dkd_parts(batch.student_logits, batch.teacher_logits, batch.labels, cfg.temperature)
        return {"dkd_tckd": ramp * cfg.alpha * tckd.mean(), "dkd_nckd": ramp * cfg.beta * nckd.mean()}
