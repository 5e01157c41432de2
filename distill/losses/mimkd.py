"""MIMKD (Shrivastava et al., CVPRW 2023): maximise a Jensen-Shannon lower bound on the mutual
information between teacher and student representations, globally (pooled vectors) and locally
(feature maps, scored at every spatial position). One negative per positive: the student feature
of another sample of the batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from distill.losses.base import (
    BuildContext, Distiller, DistillerConfig, StudentBatch, register_distiller,
)
from distill.losses.registry import CRITICS


def jsd_mi_lower_bound(joint_scores: torch.Tensor, marginal_scores: torch.Tensor) -> torch.Tensor:
    """I_JSD = E_joint[-softplus(-T)] - E_marginal[softplus(T)] (Hjelm et al., Deep InfoMax)."""
    return (-F.softplus(-joint_scores)).mean() - F.softplus(marginal_scores).mean()


def shuffled_partner(x: torch.Tensor) -> torch.Tensor:
    """Each sample paired with a different sample of the batch (a roll by a random non-zero offset)."""
    offset = int(torch.randint(1, x.shape[0], ()).item()) if x.shape[0] > 1 else 0
    return torch.roll(x, shifts=offset, dims=0)


def mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims, dims[1:])):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


@CRITICS.register("concat")
class ConcatCritic(nn.Module):
    """T(t, s) = MLP([t; s]) with `depth` hidden layers of `width` units."""

    def __init__(self, teacher_dim: int, student_dim: int, depth: int, width: int) -> None:
        super().__init__()
        self.net = mlp([teacher_dim + student_dim, *([width] * depth), 1])

    def forward(self, teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([teacher, student], dim=1)).squeeze(1)


@CRITICS.register("separable")
class SeparableCritic(nn.Module):
    """T(t, s) = g(t) . h(s): each side encoded to `embed` dims by a one-hidden-layer MLP."""

    def __init__(self, teacher_dim: int, student_dim: int, depth: int, width: int, embed: int) -> None:
        super().__init__()
        self.teacher_encoder = mlp([teacher_dim, *([width] * depth), embed])
        self.student_encoder = mlp([student_dim, *([width] * depth), embed])
        self.scale = embed**-0.5

    def forward(self, teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        return (self.teacher_encoder(teacher) * self.student_encoder(student)).sum(1) * self.scale


class LocalCritic(nn.Module):
    """Scores every spatial position: 1x1-conv encoders on both maps, then a per-position dot product.

    Maps of different sizes are aligned by adaptive average pooling to the smaller one.
    """

    def __init__(self, teacher_channels: int, student_channels: int, embed: int) -> None:
        super().__init__()
        self.teacher_encoder = nn.Sequential(
            nn.Conv2d(teacher_channels, embed, 1), nn.ReLU(inplace=True), nn.Conv2d(embed, embed, 1))
        self.student_encoder = nn.Sequential(
            nn.Conv2d(student_channels, embed, 1), nn.ReLU(inplace=True), nn.Conv2d(embed, embed, 1))
        self.scale = embed**-0.5

    def encode(self, teacher: torch.Tensor, student: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = (min(teacher.shape[2], student.shape[2]), min(teacher.shape[3], student.shape[3]))
        if teacher.shape[2:] != size:
            teacher = F.adaptive_avg_pool2d(teacher, size)
        if student.shape[2:] != size:
            student = F.adaptive_avg_pool2d(student, size)
        return self.teacher_encoder(teacher), self.student_encoder(student)

    def forward(self, teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        """MI lower bound averaged over positions; negatives pair each map with another sample's."""
        t, s = self.encode(teacher, student)
        joint = (t * s).sum(1) * self.scale
        marginal = (t * shuffled_partner(s)).sum(1) * self.scale
        return jsd_mi_lower_bound(joint, marginal)


@dataclass(frozen=True)
class MIMKDConfig(DistillerConfig):
    """MIMKD's critics and weights: adds -beta_global * I_global - beta_local * I_local."""

    critic: str = field(default="separable", metadata={"help": "global critic: separable or concat"})
    critic_depth: int = field(default=1, metadata={"help": "hidden layers of the global critic"})
    critic_width: int = field(default=512, metadata={"help": "hidden units of the global critic"})
    critic_embed: int = field(default=128, metadata={"help": "embedding size of separable and local critics"})
    beta_global: float = field(default=1.0, metadata={"help": "weight of the global (pooled) MI bound"})
    beta_local: float = field(default=1.0, metadata={"help": "weight of the local (feature-map) MI bound"})
    local_layers: tuple[str, ...] = field(default=("-2",), metadata={
        "help": "feature names or indices of the local critics ('-2' is the last map; none: no local critic)"})
    critic_lr_mult: float = field(default=1.0, metadata={"help": "learning-rate multiplier of the critics"})

    def check(self) -> None:
        CRITICS.get(self.critic)


@register_distiller("mimkd")
class MIMKD(Distiller):
    """Feature distiller: -beta_g * I_global(pooled) - beta_l * mean_l I_local(map_l), critics trained alongside.
    Terms `mimkd_global` and `mimkd_local`, each the negative weighted MI bound."""

    Config = MIMKDConfig
    needs_features = True

    def __init__(self, config: MIMKDConfig, teacher_shapes: list[torch.Size], student_shapes: list[torch.Size],
                 local_pairs: list[tuple[int, int]]) -> None:
        super().__init__(config)
        kwargs = {"depth": config.critic_depth, "width": config.critic_width}
        if config.critic == "separable":
            kwargs["embed"] = config.critic_embed
        self.global_critic = CRITICS.get(config.critic)(teacher_shapes[-1][0], student_shapes[-1][0], **kwargs)
        self.local_pairs = local_pairs
        self.local_critics = nn.ModuleList(
            LocalCritic(teacher_shapes[t][0], student_shapes[s][0], config.critic_embed) for t, s in local_pairs
        )

    @classmethod
    def build(cls, config: MIMKDConfig, context: BuildContext) -> MIMKD:
        """Local layers are feature names or indices resolved on each net."""
        pairs = [context.feature_map_pair(key, "local MI") for key in config.local_layers]
        return cls(config, context.teacher_shapes, context.student_shapes, pairs)

    @property
    def lr_mult(self) -> float:
        return self.config.critic_lr_mult

    def global_mi(self, teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        joint = self.global_critic(teacher, student)
        marginal = self.global_critic(teacher, shuffled_partner(student))
        return jsd_mi_lower_bound(joint, marginal)

    def forward(self, batch: StudentBatch) -> dict[str, torch.Tensor]:
        cfg, teacher_feats, student_feats = self.config, batch.teacher_feats, batch.student_feats
        terms = {}
        if cfg.beta_global:
            mi = self.global_mi(teacher_feats[-1].float(), student_feats[-1].float())
            terms["mimkd_global"] = -cfg.beta_global * mi
        if cfg.beta_local and self.local_pairs:
            local = torch.stack([
                critic(teacher_feats[t].float(), student_feats[s].float())
                for critic, (t, s) in zip(self.local_critics, self.local_pairs)
            ])
            terms["mimkd_local"] = -cfg.beta_local * local.mean()
        return terms
