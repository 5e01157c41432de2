"""FitNets hints (Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015; RepDistiller's `hint`).

A regressor maps the student's feature map at the hint layer onto the teacher's at the same layer
(conv + BatchNorm + ReLU, RepDistiller's ConvReg), and the student matches it under MSE.
RepDistiller's CIFAR-100 setting: hint layer 2, weight 100, CE 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from distill.errors import UserError
from distill.losses.base import BuildContext, Distiller, DistillerConfig, StudentBatch, register_distiller


def regressor(student: torch.Size, teacher: torch.Size) -> nn.Module:
    """Conv from the student's [C, H, W] map to the teacher's: stride 2 when the student's is twice as large,
    a transposed conv when half, else a valid conv that shrinks it to size; then BatchNorm and ReLU."""
    (s_c, s_h, s_w), (t_c, t_h, t_w) = student, teacher
    if s_h == 2 * t_h:
        conv = nn.Conv2d(s_c, t_c, kernel_size=3, stride=2, padding=1)
    elif 2 * s_h == t_h:
        conv = nn.ConvTranspose2d(s_c, t_c, kernel_size=4, stride=2, padding=1)
    elif s_h >= t_h and s_w >= t_w:
        conv = nn.Conv2d(s_c, t_c, kernel_size=(1 + s_h - t_h, 1 + s_w - t_w))
    else:
        raise UserError(f"FitNet cannot map a student map of {s_h}x{s_w} onto a teacher map of {t_h}x{t_w}; "
                        "choose another --fitnet-layer")
    return nn.Sequential(conv, nn.BatchNorm2d(t_c), nn.ReLU(inplace=True))


@dataclass(frozen=True)
class FitNetConfig(DistillerConfig):
    """Hint layer and weight (RepDistiller: --hint_layer 2, -b 100)."""

    layer: str = field(default="2", metadata={"help": "feature name or index of the hint layer on both nets"})
    weight: float = field(default=100.0, metadata={"help": "weight of the MSE hint term"})


@register_distiller("fitnet")
class FitNet(Distiller):
    """The `fitnet` term: weight * MSE(regressor(student map), teacher map)."""

    Config = FitNetConfig
    needs_features = True

    def __init__(self, config: FitNetConfig, pair: tuple[int, int], regress: nn.Module) -> None:
        super().__init__(config)
        self.pair = pair
        self.regress = regress

    @classmethod
    def build(cls, config: FitNetConfig, context: BuildContext) -> FitNet:
        pair = context.feature_map_pair(config.layer, "FitNet hint")
        return cls(config, pair, regressor(context.student_shapes[pair[1]], context.teacher_shapes[pair[0]]))

    def forward(self, batch: StudentBatch) -> dict[str, torch.Tensor]:
        t, s = self.pair
        guided = self.regress(batch.student_feats[s])
        return {"fitnet": self.config.weight * F.mse_loss(guided.float(), batch.teacher_feats[t].float())}
