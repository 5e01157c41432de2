"""Losses against direct computations: KD, CMI, the MCMI objective and MIMKD's JSD bound."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distill.losses import (
    ConcatCritic,
    LocalCritic,
    MCMIObjective,
    SeparableCritic,
    class_means,
    conditional_mutual_information,
    jsd_mi_lower_bound,
    kd_divergence,
)


def softmax64(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_kd_matches_hand_computation() -> None:
    s = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = np.array([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    temp = 4.0
    ps, pt = softmax64(s / temp), softmax64(t / temp)
    expected = (pt * (np.log(pt) - np.log(ps))).sum(axis=1).mean() * temp**2
    got = kd_divergence(torch.tensor(s, dtype=torch.float32), torch.tensor(t, dtype=torch.float32), temp)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert kd_divergence(torch.tensor(t), torch.tensor(t), temp).item() == pytest.approx(0.0, abs=1e-7)


def cmi_float64(logits: np.ndarray, labels: np.ndarray, centroids: np.ndarray | None) -> float:
    p = softmax64(logits)
    if centroids is None:
        centroids = np.stack([p[labels == c].mean(0) if (labels == c).any() else np.zeros(p.shape[1])
                              for c in range(p.shape[1])])
    return float(np.mean([np.sum(p[i] * (np.log(p[i]) - np.log(centroids[labels[i]]))) for i in range(len(p))]))


@pytest.mark.parametrize("given_centroids", [False, True])
def test_cmi_matches_float64(given_centroids: bool) -> None:
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(64, 5)) * 3, rng.integers(0, 5, 64)
    centroids = softmax64(rng.normal(size=(5, 5))) if given_centroids else None
    got = conditional_mutual_information(
        torch.tensor(logits, dtype=torch.float32), torch.tensor(labels),
        None if centroids is None else torch.tensor(centroids, dtype=torch.float32))
    assert got.item() == pytest.approx(cmi_float64(logits, labels, centroids), rel=1e-4)


def test_cmi_is_zero_when_each_class_has_one_output() -> None:
    per_class = torch.randn(4, 7) * 5
    labels = torch.tensor([0, 1, 2, 3] * 8)
    assert conditional_mutual_information(per_class[labels], labels).item() == pytest.approx(0.0, abs=1e-6)


def test_cmi_is_finite_for_extreme_logits() -> None:
    logits = torch.tensor([[1000.0, -1000.0], [-1000.0, 1000.0]])
    centroids = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert torch.isfinite(conditional_mutual_information(logits, torch.tensor([0, 1]), centroids))


def test_class_means() -> None:
    means, counts = class_means(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), torch.tensor([0, 0, 2]), 3)
    torch.testing.assert_close(means, torch.tensor([[0.5, 0.5], [0.0, 0.0], [0.5, 0.5]]))
    assert counts.tolist() == [2, 0, 1]


def test_mcmi_with_positive_lambda_raises_cmi() -> None:
    """A few steps of CE - lambda * CMI leave a classifier with higher CMI than CE alone does."""
    from distill.data import load_raw
    raw = load_raw("digits")
    x = raw.train.images[:, 0, ::4, ::4].flatten(1).float() / 255
    y = raw.train.labels

    def train(lam: float) -> float:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
        centroids, _ = class_means(F.softmax(model(x), 1).detach(), y, 10)
        objective = MCMIObjective(lam, centroids)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(60):
            loss = sum(objective(model(x), y).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return conditional_mutual_information(model(x), y).item()

    assert train(1.0) > train(0.0) + 0.05


def test_mcmi_sign_convention_and_ema() -> None:
    centroids = torch.full((3, 3), 1 / 3)
    objective = MCMIObjective(0.5, centroids, ema_decay=0.9)
    logits, labels = torch.tensor([[4.0, 0.0, 0.0]]), torch.tensor([0])
    terms = objective(logits, labels)
    assert terms["neg_cmi"].item() == pytest.approx(-0.5 * conditional_mutual_information(logits, labels, centroids).item())
    p0 = F.softmax(logits, 1)[0]
    torch.testing.assert_close(objective.centroids[0], 0.9 * torch.full((3,), 1 / 3) + 0.1 * p0)
    torch.testing.assert_close(objective.centroids[1], torch.full((3,), 1 / 3))


def gaussian_pairs(rho: float, n: int, dim: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, dim, generator=gen)
    return x, rho * x + math.sqrt(1 - rho**2) * torch.randn(n, dim, generator=gen)


@pytest.mark.parametrize("critic_cls", [ConcatCritic, SeparableCritic])
def test_jsd_bound_on_gaussians_is_below_true_mi_and_rises_with_rho(critic_cls: type) -> None:
    dim, estimates = 2, []
    for rho in (0.0, 0.5, 0.8, 0.95):
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(1)
        critic = critic_cls(dim, dim, depth=1, width=64, **({"embed": 128} if critic_cls is SeparableCritic else {}))
        opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
        for _ in range(300):
            x, y = gaussian_pairs(rho, 256, dim, gen)
            loss = -jsd_mi_lower_bound(critic(x, y), critic(x, y.roll(1, 0)))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            x, y = gaussian_pairs(rho, 4096, dim, gen)
            bound = jsd_mi_lower_bound(critic(x, y), critic(x, y.roll(1, 0))).item()
        true_mi = -0.5 * dim * math.log(1 - rho**2)
        assert bound < true_mi
        estimates.append(bound)
    assert estimates[0] == pytest.approx(-2 * math.log(2), abs=0.05), "no information: the bound's floor"
    assert estimates == sorted(estimates) and estimates[-1] - estimates[0] > 0.5


def test_local_critic_aligns_map_sizes() -> None:
    critic = LocalCritic(teacher_channels=32, student_channels=8, embed=16)
    t, s = critic.encode(torch.randn(4, 32, 8, 8), torch.randn(4, 8, 16, 16))
    assert t.shape == s.shape == (4, 16, 8, 8)
    t, s = critic.encode(torch.randn(4, 32, 8, 4), torch.randn(4, 8, 4, 8))  # each map the smaller in one direction
    assert t.shape == s.shape == (4, 16, 4, 4)
    t, s = critic.encode(torch.randn(4, 32, 8, 4), torch.randn(4, 8, 8, 8))  # a tall map: its own height kept
    assert t.shape == s.shape == (4, 16, 8, 4)
    value = critic(torch.randn(4, 32, 8, 8), torch.randn(4, 8, 16, 16))
    assert value.dim() == 0 and value.item() < 0


def test_mcmi_centroids_move_only_while_training_and_its_ce_is_plain_cross_entropy():
    centroids = torch.full((3, 3), 1 / 3)
    objective = MCMIObjective(0.5, centroids, ema_decay=0.5).eval()
    logits, labels = torch.tensor([[4.0, 0.0, 0.0], [0.0, 2.0, 1.0]]), torch.tensor([0, 2])
    terms = objective(logits, labels)
    torch.testing.assert_close(objective.centroids, centroids), "evaluation leaves them"
    p = softmax64(logits.double().numpy())
    assert terms["ce"].item() == pytest.approx(-np.log(p[[0, 1], [0, 2]]).mean(), rel=1e-6)
    frozen = MCMIObjective(0.5, centroids).train()
    frozen(logits, labels)
    torch.testing.assert_close(frozen.centroids, centroids), "no EMA: frozen while training too"
    assert conditional_mutual_information(logits, labels, torch.zeros(3, 3)).item() == pytest.approx(
        float((p * (np.log(p) - math.log(1e-12))).sum(axis=1).mean()), rel=1e-5), "log Q floored at 1e-12"


def test_class_means_keep_the_precision_they_are_given():
    probs = torch.tensor([[0.25, 0.75], [0.5, 0.5]], dtype=torch.float64)
    means, counts = class_means(probs, torch.tensor([1, 1]), 2)
    assert means.dtype == torch.float64 and means[1].tolist() == [0.375, 0.625] and counts.tolist() == [0, 2]
