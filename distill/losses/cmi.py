"""Conditional mutual information I(X; Y_hat | Y) of a classifier, and the MCMI teacher objective.

CMI is the mean over samples of KL(P_x || Q_y): P_x = softmax(logits), Q_y the centroid of class
y (the mean output over that class). It measures how spread a class's outputs are around their
centroid. MCMI (Ye et al., ICLR 2024) fine-tunes a teacher with CE - lambda * CMI.

Sign convention: lambda > 0 MAXIMISES CMI (the loss subtracts it). The paper's code passes the
same quantity as a negative coefficient on a loss it adds; `--lam 0.25` here is its `-0.25`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distill import distributed

LOG_FLOOR = 1e-12  # clamps log Q so an empty centroid entry cannot give -inf


def class_means(probs: torch.Tensor, labels: torch.Tensor, num_classes: int,
                across_workers: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-class mean of `probs` [K, C], per-class counts [K]); classes without samples get zeros.
    `across_workers`: the means of every data-parallel worker's samples together (sums and counts added)."""
    sums = torch.zeros(num_classes, probs.shape[1], dtype=probs.dtype, device=probs.device)
    sums.index_add_(0, labels, probs)
    counts = torch.bincount(labels, minlength=num_classes).to(probs.dtype)
    if across_workers:
        distributed.sum_across_workers(sums, counts)
    return sums / counts.clamp_min(1).unsqueeze(1), counts


def conditional_mutual_information(
    logits: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor | None = None
) -> torch.Tensor:
    """Empirical I(X; Y_hat | Y) in nats: mean over samples of KL(softmax(logits) || Q_label).

    With `centroids=None`, Q_y is the batch's own mean output over the samples of class y.
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    p = log_p.exp()
    if centroids is None:
        centroids, _ = class_means(p, labels, logits.shape[1])
    log_q = centroids[labels].float().clamp_min(LOG_FLOOR).log()
    return (p * (log_p - log_q)).sum(dim=1).mean()


class MCMIObjective(nn.Module):
    """CE - lambda * CMI against frozen class centroids (optionally EMA-updated from each batch: in a data-parallel
    run, from the class means of every worker's share of the batch, so the workers' centroids stay equal)."""

    def __init__(self, lam: float, centroids: torch.Tensor, ema_decay: float | None = None) -> None:
        super().__init__()
        self.lam = lam
        self.ema_decay = ema_decay
        self.register_buffer("centroids", centroids.detach().clone().float())

    @torch.no_grad()
    def _update_centroids(self, probs: torch.Tensor, labels: torch.Tensor) -> None:
        means, counts = class_means(probs.float(), labels, self.centroids.shape[0], across_workers=True)
        present = counts > 0
        decay = self.ema_decay
        self.centroids[present] = decay * self.centroids[present] + (1 - decay) * means[present]

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        cmi = conditional_mutual_information(logits, labels, self.centroids)
        if self.training and self.ema_decay is not None:
            self._update_centroids(F.softmax(logits.detach().float(), dim=1), labels)
        return {"ce": F.cross_entropy(logits.float(), labels), "neg_cmi": -self.lam * cmi}
