"""Probability-quality scores against hand computations."""
from __future__ import annotations

import math

import pytest
import torch

from distill.metrics import calibration_bins, expected_calibration_error, probability_scores


def test_ece_matches_a_hand_computation():
    # Four samples: confidences 0.95, 0.95 (bin 14), 0.55 (bin 8), 0.35 (bin 5); correct, wrong, correct, wrong.
    probs = torch.tensor([[0.95, 0.05, 0.0], [0.95, 0.05, 0.0], [0.55, 0.45, 0.0], [0.35, 0.33, 0.32]])
    labels = torch.tensor([0, 1, 0, 2])
    # bin 14: acc 0.5, conf 0.95 -> 2/4 * 0.45; bin 8: acc 1, conf 0.55 -> 1/4 * 0.45; bin 5: acc 0, conf 0.35.
    expected = 0.5 * 0.45 + 0.25 * 0.45 + 0.25 * 0.35
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)
    table = calibration_bins(probs, labels)
    assert table["counts"].tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 2]
    assert table["accuracy"][14].item() == 0.5 and table["confidence"][14].item() == pytest.approx(0.95)


def test_nll_brier_and_entropy_match_a_hand_computation():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.25, 0.5, 0.25]])
    labels = torch.tensor([0, 2])
    scores = probability_scores(probs.log(), labels)
    assert scores["nll"] == pytest.approx(-(math.log(0.7) + math.log(0.25)) / 2)
    brier = ((0.3 ** 2 + 0.2 ** 2 + 0.1 ** 2) + (0.25 ** 2 + 0.5 ** 2 + 0.75 ** 2)) / 2
    assert scores["brier"] == pytest.approx(brier)
    entropy = -sum(p * math.log(p) for p in (0.7, 0.2, 0.1)) - sum(p * math.log(p) for p in (0.25, 0.5, 0.25))
    assert scores["entropy"] == pytest.approx(entropy / 2)
    assert "kl_bayes" not in scores


def test_the_true_posterior_scores_zero_kl_and_its_own_bayes_accuracy():
    truth = torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.5, 0.5]])
    labels = torch.tensor([0, 1, 1])
    scores = probability_scores(truth.log(), labels, truth)
    assert scores["kl_bayes"] == pytest.approx(0.0, abs=1e-6)
    assert scores["bayes_acc"] == pytest.approx((0.9 + 0.7 + 0.5) / 3)
    uniform = probability_scores(torch.zeros(3, 2), labels, truth)
    assert uniform["kl_bayes"] > 0.05 and uniform["entropy"] == pytest.approx(math.log(2))


def test_an_empty_set_has_no_scores():
    assert probability_scores(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64)) == {}
