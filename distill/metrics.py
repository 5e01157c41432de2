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


ECE_BINS = 15  # equal-width confidence bins of the expected calibration error (Guo et al. 2017)


def calibration_bins(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> dict[str, torch.Tensor]:
    """Top-label reliability per equal-width confidence bin: counts, mean confidence and accuracy
    (0 where a bin is empty). What the ECE sums and the reliability diagram draws."""
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == labels).float()
    index = (confidence * bins).long().clamp(max=bins - 1)  # confidence 1.0 falls in the last bin
    counts = torch.zeros(bins, device=probs.device).index_add_(0, index, torch.ones_like(confidence))
    confidence_sum = torch.zeros(bins, device=probs.device).index_add_(0, index, confidence)
    correct_sum = torch.zeros(bins, device=probs.device).index_add_(0, index, correct)
    filled = counts.clamp_min(1)
    return {"counts": counts, "confidence": confidence_sum / filled, "accuracy": correct_sum / filled}


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Σ_b (n_b / N) |acc_b − conf_b| over top-label confidence bins."""
    return binned_calibration_error(calibration_bins(probs, labels, bins))


def binned_calibration_error(table: dict[str, torch.Tensor]) -> float:
    """The ECE of a `calibration_bins` table (for a caller that draws the table too)."""
    weights = table["counts"] / table["counts"].sum().clamp_min(1)
    return (weights * (table["accuracy"] - table["confidence"]).abs()).sum().item()


def probability_scores(logits: torch.Tensor, labels: torch.Tensor,
                       posteriors: torch.Tensor | None = None) -> dict[str, float]:
    """How good the predicted distributions are, not only their argmax: NLL, ECE, Brier score (sum over
    classes of the squared error against the one-hot label, averaged) and mean entropy, in nats; and
    when the true posterior P*(y|x) of each image is known, the mean KL(P* ‖ P_model) and the Bayes
    accuracy (the mean of max_y P*(y|x): what the best possible classifier scores in expectation)."""
    if not len(labels):
        return {}
    log_probs = torch.log_softmax(logits.float(), dim=1)
    probs = log_probs.exp()
    one_hot = torch.nn.functional.one_hot(labels, probs.shape[1]).float()
    scores = {
        "nll": -log_probs.gather(1, labels[:, None]).mean().item(),
        "ece": expected_calibration_error(probs, labels),
        "brier": (probs - one_hot).pow(2).sum(dim=1).mean().item(),
        "entropy": -(probs * log_probs).sum(dim=1).mean().item(),
    }
    if posteriors is not None:
        truth = posteriors.float()
        kl = (truth * (truth.clamp_min(1e-30).log() - log_probs)).sum(dim=1)
        scores.update(kl_bayes=kl.mean().item(), bayes_acc=truth.max(dim=1).values.mean().item())
    return scores


def bayes_classifier_scores(posteriors: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """`probability_scores` of the Bayes classifier itself (it predicts the true posterior): its expected
    accuracy `bayes_acc` and the posterior's mean `entropy`, what a generated dataset reports of itself."""
    return probability_scores(posteriors.clamp_min(1e-30).log(), labels, posteriors)


def shown(name: str, value: float) -> str:
    """A score as a person reads it on a terminal or in a summary: accuracies in percent (`test_acc 85.00%`, as the
    epoch lines show validation), every other score to four decimals."""
    is_accuracy = name.endswith("acc") or "_acc_" in name
    return f"{name} {100 * value:.2f}%" if is_accuracy else f"{name} {value:.4f}"
