"""What a run optimises: each objective maps a batch to (logits of the trained net, named loss terms).

The engine sums the terms, logs each one, and steps the optimiser over `param_groups()`.
A frozen teacher is a submodule pinned to eval mode and left out of checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from distill.losses.base import Distiller, StudentBatch
from distill.losses.cmi import MCMIObjective

Terms = dict[str, torch.Tensor]


@dataclass
class Batch:
    """One training step's input: images, labels, the 1-based epoch being trained (a 0-d float tensor on the
    images' device) and the samples' dataset indices (when the loader was asked for them)."""

    images: torch.Tensor
    labels: torch.Tensor
    epoch: torch.Tensor
    indices: torch.Tensor | None = None


class Objective(nn.Module):
    """Base: `model` is the net being trained; `frozen` names submodules that are never trained or saved."""

    frozen: tuple[str, ...] = ()

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    needs_indices: bool = False  # whether the loader must hand each batch's dataset indices

    def forward(self, batch: Batch) -> tuple[torch.Tensor, Terms]:
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

    def forward(self, batch: Batch) -> tuple[torch.Tensor, Terms]:
        logits = self.model(batch.images)
        return logits, {"ce": F.cross_entropy(logits.float(), batch.labels)}


class MCMITeacherObjective(Objective):
    """CE - lambda * CMI against class centroids from the MLL teacher (see distill.losses.cmi)."""

    def __init__(self, model: nn.Module, loss: MCMIObjective) -> None:
        super().__init__(model)
        self.loss = loss

    def forward(self, batch: Batch) -> tuple[torch.Tensor, Terms]:
        logits = self.model(batch.images)
        return logits, self.loss(logits, batch.labels)


class DistillationObjective(Objective):
    """ce_weight * CE + the terms of each distiller (KD, DKD, CRD, FitNet, AT, MIMKD, ...)."""

    frozen = ("teacher",)

    def __init__(self, student: nn.Module, teacher: nn.Module, ce_weight: float,
                 distillers: dict[str, Distiller]) -> None:
        super().__init__(student)
        self.teacher = teacher.requires_grad_(False).eval()
        self.ce_weight = ce_weight
        self.distillers = nn.ModuleDict(distillers)
        self.needs_features = any(d.needs_features for d in distillers.values())
        self.needs_indices = any(d.needs_indices for d in distillers.values())

    def forward(self, batch: Batch) -> tuple[torch.Tensor, Terms]:
        features = self.needs_features
        with torch.no_grad():
            teacher_out = self.teacher(batch.images, with_features=features)
        student_out = self.model(batch.images, with_features=features)
        teacher_logits, teacher_feats = teacher_out if features else (teacher_out, None)
        logits, student_feats = student_out if features else (student_out, None)
        terms: Terms = {}
        if self.ce_weight:
            terms["ce"] = self.ce_weight * F.cross_entropy(logits.float(), batch.labels)
        offered = StudentBatch(logits, teacher_logits, batch.labels, batch.epoch, student_feats, teacher_feats,
                               batch.indices)
        for distiller in self.distillers.values():
            terms.update(distiller(offered))
        return logits, terms

    def param_groups(self) -> list[dict]:
        return super().param_groups() + [g for d in self.distillers.values() for g in d.param_groups()]

    def extra_parameters(self) -> dict[str, int]:
        """Trainable parameters each distiller adds to the student's."""
        return {name: d.extra_parameters() for name, d in self.distillers.items()}
