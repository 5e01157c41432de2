"""Accuracy, overall and per class (zero-shot reports the classes the student never saw)."""
from __future__ import annotations

from collections.abc import Iterable

import torch


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of `predictions` (class ids, or logits [N, K]) equal to `labels`; 0.0 on an empty set."""
    if predictions.dim() == 2:
        predictions = predictions.argmax(1)
    return (predictions == labels).float().mean().item() if labels.numel() else 0.0


def per_class_accuracy(
    predictions: torch.Tensor, labels: torch.Tensor, classes: Iterable[int]
) -> dict[int, float]:
    """{class: accuracy on the samples of that class} for each listed class that occurs in `labels`."""
    if predictions.dim() == 2:
        predictions = predictions.argmax(1)
    result = {}
    for cls in classes:
        mask = labels == cls
        if mask.any():
            result[int(cls)] = (predictions[mask] == cls).float().mean().item()
    return result
