"""Contrastive representation distillation (Tian et al., "Contrastive Representation Distillation",
ICLR 2020; RepDistiller's `crd`).

Student and teacher pooled features are embedded (linear + L2 norm, 128-d). Two momentum memory
banks hold one embedding per training image, the student's and the teacher's. For each sample, its
own bank entry is the positive and `nce_k` entries of images of other classes are negatives; the
scores exp(v . m / nce_t) are normalised by a constant fixed on the first batch, and the NCE loss
(one positive against nce_k noise samples, noise probability 1/N) is summed over both directions.
Negatives are drawn from the student's own training set, so few-shot and zero-shot splits work as is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from distill.errors import UserError
from distill.losses.base import BuildContext, Distiller, DistillerConfig, StudentBatch, positive, register_distiller

NCE_EPS = 1e-7  # RepDistiller's eps in the NCE ratio


def nce_loss(scores: torch.Tensor, num_data: int) -> torch.Tensor:
    """NCE for [B, 1 + K] normalised scores, column 0 the positive: -(log D(pos) + sum log(1 - D(neg))) / B."""
    noise = scores.shape[1] - 1
    noise_mass = noise / num_data
    positive_term = torch.log(scores[:, 0] / (scores[:, 0] + noise_mass + NCE_EPS))
    negative_term = torch.log(noise_mass / (scores[:, 1:] + noise_mass + NCE_EPS))
    return -(positive_term.sum() + negative_term.sum()) / scores.shape[0]


class Embed(nn.Module):
    """Linear projection to the embedding size, then L2 normalisation."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(x.flatten(1).float()), dim=1)


@dataclass(frozen=True)
class CRDConfig(DistillerConfig):
    """RepDistiller's CRD defaults: weight 0.8 (-b 0.8) with CE 1, 128-d embeddings, 16384 negatives,
    temperature 0.07, memory momentum 0.5."""

    weight: float = field(default=0.8, metadata={"help": "weight of the CRD term"})
    feat_dim: int = field(default=128, metadata={"help": "embedding size"})
    nce_k: int = field(default=16384, metadata={"help": "negatives per sample, drawn from other classes"})
    nce_t: float = field(default=0.07, metadata={"help": "temperature of the contrastive scores"})
    nce_m: float = field(default=0.5, metadata={"help": "momentum of the memory banks"})

    def check(self) -> None:
        positive("crd.nce_t", self.nce_t)
        positive("crd.nce_k", self.nce_k)
        positive("crd.feat_dim", self.feat_dim)
        if not 0.0 <= self.nce_m < 1.0:
            raise UserError(f"crd.nce_m must be in [0, 1), got {self.nce_m}")


@register_distiller("crd")
class CRD(Distiller):
    """The `crd` term. Owns the two embeddings (trained) and the two memory banks (buffers, so a checkpoint
    keeps them and a resumed run continues exactly)."""

    Config = CRDConfig
    needs_features = True
    needs_indices = True
    single_process_only = ("its memory banks hold an embedding of every training image, and each data-parallel "
                           "worker would update only its own shard's")

    def __init__(self, config: CRDConfig, teacher_dim: int, student_dim: int, train_labels: torch.Tensor) -> None:
        super().__init__(config)
        labels = train_labels.long().cpu()
        if labels.unique().numel() < 2:
            raise UserError("CRD draws negatives from other classes: the student's training set needs two classes")
        self.embed_student = Embed(student_dim, config.feat_dim)
        self.embed_teacher = Embed(teacher_dim, config.feat_dim)
        self.num_data = len(labels)
        stdv = 1.0 / math.sqrt(config.feat_dim / 3)
        self.register_buffer("memory_student", torch.rand(self.num_data, config.feat_dim) * 2 * stdv - stdv)
        self.register_buffer("memory_teacher", torch.rand(self.num_data, config.feat_dim) * 2 * stdv - stdv)
        self.register_buffer("norm_student", torch.tensor(-1.0))  # set on the first batch, then fixed
        self.register_buffer("norm_teacher", torch.tensor(-1.0))
        counts = torch.bincount(labels)
        self.register_buffer("by_class", torch.argsort(labels, stable=True), persistent=False)
        self.register_buffer("class_start", torch.cumsum(counts, 0) - counts, persistent=False)
        self.register_buffer("class_count", counts, persistent=False)

    def step_bytes(self, batch_size: int) -> int:
        """Each sample's nce_k + 1 bank rows, gathered from both banks (float32), with their indices and scores."""
        return batch_size * (self.config.nce_k + 1) * (2 * self.config.feat_dim * 4 + 48)

    @classmethod
    def build(cls, config: CRDConfig, context: BuildContext) -> CRD:
        return cls(config, context.teacher_shapes[-1][0], context.student_shapes[-1][0], context.train_labels)

    def negatives(self, labels: torch.Tensor) -> torch.Tensor:
        """[B, nce_k] indices of training images of other classes, uniform with replacement (RepDistiller's
        'exact' sampling): a position among the N - n_y others, stepped over class y's block."""
        start, count = self.class_start[labels].unsqueeze(1), self.class_count[labels].unsqueeze(1)
        draws = torch.rand(len(labels), self.config.nce_k, device=labels.device)
        position = (draws * (self.num_data - count)).long().clamp_max(self.num_data - count - 1)
        position = position + count * (position >= start)
        return self.by_class[position]

    def scores(self, embedding: torch.Tensor, memory: torch.Tensor, index: torch.Tensor,
               norm: torch.Tensor) -> torch.Tensor:
        """exp(memory[index] . embedding / nce_t) / Z, with Z = mean score * N set on the first batch."""
        out = torch.exp(torch.bmm(memory[index].detach(), embedding.unsqueeze(2)).squeeze(2) / self.config.nce_t)
        norm.copy_(torch.where(norm < 0, out.detach().mean() * self.num_data, norm))  # no host sync
        return out / norm

    @torch.no_grad()
    def update(self, memory: torch.Tensor, embedding: torch.Tensor, indices: torch.Tensor) -> None:
        """memory[i] <- normalize(m * memory[i] + (1 - m) * embedding)."""
        mixed = memory[indices] * self.config.nce_m + embedding.detach() * (1 - self.config.nce_m)
        memory.index_copy_(0, indices, F.normalize(mixed, dim=1))

    def forward(self, batch: StudentBatch) -> dict[str, torch.Tensor]:
        indices = batch.indices
        with torch.autocast(indices.device.type, enabled=False):
            v_s = self.embed_student(batch.student_feats[-1])
            v_t = self.embed_teacher(batch.teacher_feats[-1])
            index = torch.cat([indices.unsqueeze(1), self.negatives(batch.labels)], dim=1)
            out_s = self.scores(v_s, self.memory_teacher, index, self.norm_student)
            out_t = self.scores(v_t, self.memory_student, index, self.norm_teacher)
            loss = nce_loss(out_s, self.num_data) + nce_loss(out_t, self.num_data)
            self.update(self.memory_student, v_s, indices)
            self.update(self.memory_teacher, v_t, indices)
        return {"crd": self.config.weight * loss}
