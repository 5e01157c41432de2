"""What a run optimises: each objective maps a batch to (logits of the trained net, named loss terms).

The engine sums the terms, logs each one, and steps the optimiser over `param_groups()`.
A frozen teacher is a submodule pinned to eval mode and left out of checkpoints.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distill.losses.cmi import MCMIObjective
from distill.losses.kd import kd_divergence

Terms = dict[str, torch.Tensor]


class Objective(nn.Module):
    """Base: `model` is the net being trained; `frozen` names submodules that are never trained or saved."""

    frozen: tuple[str, ...] = ()

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, Terms]:
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        """Optimiser groups; a group's `lr_mult` scales the base learning rate."""
        return [{"params": [p for p in self.model.parameters() if p.requires_grad], "lr_mult": 1.0}]

    def train(self, mode: bool = True) -> Objective:
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).eval()
        return self

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything needed to resume except the frozen parts (which are reloaded from their own file)."""
        prefixes = tuple(f"{name}." for name in self.frozen)
        return {k: v for k, v in self.state_dict().items() if not k.startswith(prefixes)}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        prefixes = tuple(f"{name}." for name in self.frozen)
        missing = [k for k in missing if not k.startswith(prefixes)]
        if missing or unexpected:
            raise RuntimeError(f"checkpoint does not match the run: missing {missing[:3]}, unexpected {unexpected[:3]}")


class CrossEntropyObjective(Objective):
    """Maximum log-likelihood: plain cross-entropy (the MLL teacher)."""

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, Terms]:
        logits = self.model(images)
        return logits, {"ce": F.cross_entropy(logits.float(), labels)}


class MCMITeacherObjective(Objective):
    """CE - lambda * CMI against class centroids from the MLL teacher (see distill.losses.cmi)."""

    def __init__(self, model: nn.Module, loss: MCMIObjective) -> None:
        super().__init__(model)
        self.loss = loss

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, Terms]:
        logits = self.model(images)
        return logits, self.loss(logits, labels)


class DistillationObjective(Objective):
    """gamma * CE + alpha * KD(T) + the terms of each feature distiller (e.g. MIMKD's MI bounds)."""

    frozen = ("teacher",)

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        gamma: float,
        alpha: float,
        temperature: float,
        distillers: dict[str, nn.Module] | None = None,
        distiller_lr_mult: float = 1.0,
    ) -> None:
        super().__init__(student)
        self.teacher = teacher.requires_grad_(False).eval()
        self.gamma, self.alpha, self.temperature = gamma, alpha, temperature
        self.distillers = nn.ModuleDict(distillers or {})
        self.distiller_lr_mult = distiller_lr_mult

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, Terms]:
        needs_features = len(self.distillers) > 0
        with torch.no_grad():
            teacher_out = self.teacher(images, with_features=needs_features)
        student_out = self.model(images, with_features=needs_features)
        teacher_logits, teacher_feats = teacher_out if needs_features else (teacher_out, None)
        logits, student_feats = student_out if needs_features else (student_out, None)
        terms: Terms = {}
        if self.gamma:
            terms["ce"] = self.gamma * F.cross_entropy(logits.float(), labels)
        if self.alpha:
            terms["kd"] = self.alpha * kd_divergence(logits, teacher_logits, self.temperature)
        for distiller in self.distillers.values():
            terms.update(distiller(teacher_feats, student_feats))
        return logits, terms

    def param_groups(self) -> list[dict]:
        groups = super().param_groups()
        if len(self.distillers):
            groups.append({"params": list(self.distillers.parameters()), "lr_mult": self.distiller_lr_mult})
        return groups
