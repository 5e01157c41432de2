"""Each distiller against a hand computation on a tiny batch, and the interface every distiller keeps."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distill import models
from distill.losses import DISTILLERS, BuildContext, StudentBatch
from distill.losses.at import AT, ATConfig, attention_loss
from distill.losses.crd import CRD, CRDConfig, nce_loss
from distill.losses.dkd import DKD, DKDConfig, dkd_parts
from distill.losses.fitnet import FitNet, FitNetConfig, regressor
from distill.losses.kd import kd_divergence
from distill.runs import feature_shapes

ONE = torch.tensor(1.0)  # the first epoch, as the engine hands it


def softmax64(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def kl64(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return (p * (np.log(p) - np.log(q))).sum(axis=1)


def logits_batch(seed: int = 0, batch: int = 6, classes: int = 5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, classes)) * 2, rng.normal(size=(batch, classes)) * 2, rng.integers(0, classes, batch)


def test_dkd_parts_match_a_float64_hand_computation() -> None:
    s, t, y = logits_batch()
    temp = 3.0
    ps, pt = softmax64(s / temp), softmax64(t / temp)
    rows = np.arange(len(y))
    binary = lambda p: np.stack([p[rows, y], 1 - p[rows, y]], axis=1)  # noqa: E731
    mask = np.ones_like(ps, dtype=bool)
    mask[rows, y] = False
    rest = lambda p: p[mask].reshape(len(y), -1) / p[mask].reshape(len(y), -1).sum(1, keepdims=True)  # noqa: E731
    tckd, nckd = dkd_parts(*(torch.tensor(a, dtype=torch.float32) for a in (s, t)), torch.tensor(y), temp)
    np.testing.assert_allclose(tckd.numpy(), kl64(binary(pt), binary(ps)) * temp**2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(nckd.numpy(), kl64(rest(pt), rest(ps)) * temp**2, rtol=1e-4, atol=1e-5)


def test_dkd_recombines_into_kd() -> None:
    """The paper's reformulation, per sample: KD = TCKD + (1 - p_t^T) * NCKD."""
    s, t, y = (torch.tensor(a) for a in logits_batch(1, batch=32, classes=10))
    s, t = s.float() * 3, t.float() * 3
    temp = 4.0
    tckd, nckd = dkd_parts(s, t, y, temp)
    p_target = F.softmax(t / temp, dim=1)[torch.arange(32), y]
    per_sample_kd = torch.stack([kd_divergence(s[i:i + 1], t[i:i + 1], temp) for i in range(32)])
    torch.testing.assert_close(tckd + (1 - p_target) * nckd, per_sample_kd, rtol=1e-4, atol=1e-5)


def test_dkd_weights_and_warms_up_linearly() -> None:
    s, t, y = (torch.tensor(a) for a in logits_batch(2))
    s, t = s.float(), t.float()
    tckd, nckd = dkd_parts(s, t, y, 4.0)
    dkd = DKD(DKDConfig(alpha=2.0, beta=8.0, warmup=20))
    for epoch, ramp in ((1, 0.05), (5, 0.25), (20, 1.0), (200, 1.0)):
        terms = dkd(StudentBatch(s, t, y, torch.tensor(float(epoch))))
        assert terms.keys() == {"dkd_tckd", "dkd_nckd"}
        torch.testing.assert_close(terms["dkd_tckd"], ramp * 2.0 * tckd.mean())
        torch.testing.assert_close(terms["dkd_nckd"], ramp * 8.0 * nckd.mean())


def test_dkd_is_finite_for_confident_logits() -> None:
    s = torch.tensor([[50.0, -50.0, 0.0], [0.0, 80.0, -80.0]])
    tckd, nckd = dkd_parts(s, s.flip(1), torch.tensor([0, 1]), 1.0)
    assert torch.isfinite(tckd).all() and torch.isfinite(nckd).all()


def test_at_matches_a_hand_computation_and_is_zero_for_identical_maps() -> None:
    rng = np.random.default_rng(3)
    fs, ft = rng.normal(size=(2, 4, 3, 3)), rng.normal(size=(2, 6, 3, 3))

    def attention(f: np.ndarray) -> np.ndarray:
        a = (f**2).mean(1).reshape(len(f), -1)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    expected = ((attention(fs) - attention(ft)) ** 2).mean()
    got = attention_loss(torch.tensor(fs, dtype=torch.float32), torch.tensor(ft, dtype=torch.float32), 2.0)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    same = torch.randn(2, 4, 8, 8)
    assert attention_loss(same, same.clone(), 2.0).item() == 0.0
    assert attention_loss(same, 3 * same, 2.0).item() == pytest.approx(0.0, abs=1e-12), "scale-free: maps are normed"
    pooled = attention_loss(torch.randn(2, 4, 16, 16), torch.randn(2, 8, 8, 8), 2.0)  # sizes aligned by pooling
    assert torch.isfinite(pooled)


def test_fitnet_is_its_weight_times_the_mse_of_the_regressed_map() -> None:
    student, teacher = models.create("resnet8", 10), models.create("resnet14", 10)
    fitnet = build("fitnet", FitNetConfig(layer="stage2", weight=100.0), teacher, student)
    x = torch.randn(4, 3, 32, 32)
    (s_logits, s_feats), (t_logits, t_feats) = student(x, with_features=True), teacher(x, with_features=True)
    terms = fitnet(StudentBatch(s_logits, t_logits, torch.zeros(4, dtype=torch.long), ONE, s_feats, t_feats))
    index = student.feature_index("stage2")
    expected = 100.0 * F.mse_loss(fitnet.regress(s_feats[index]), t_feats[index])
    torch.testing.assert_close(terms["fitnet"], expected)
    assert fitnet.extra_parameters() == sum(p.numel() for p in fitnet.regress.parameters())


@pytest.mark.parametrize("student_size, teacher_size", [(16, 8), (8, 16), (8, 8), (10, 8)])
def test_fitnet_regressor_maps_any_supported_size_onto_the_teachers(student_size: int, teacher_size: int) -> None:
    out = regressor(torch.Size([4, student_size, student_size]), torch.Size([6, teacher_size, teacher_size]))(
        torch.randn(2, 4, student_size, student_size))
    assert out.shape == (2, 6, teacher_size, teacher_size)


def test_nce_loss_matches_a_hand_computation() -> None:
    rng = np.random.default_rng(4)
    scores, num_data = rng.uniform(0.01, 2.0, size=(3, 5)), 50
    m, eps = 4, 1e-7
    expected = -(np.log(scores[:, 0] / (scores[:, 0] + m / num_data + eps)).sum()
                 + np.log((m / num_data) / (scores[:, 1:] + m / num_data + eps)).sum()) / 3
    assert nce_loss(torch.tensor(scores), num_data).item() == pytest.approx(expected, rel=1e-6)


def test_crd_negatives_come_from_every_other_class_only() -> None:
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 2, 2, 1, 0, 3, 3])
    crd = CRD(CRDConfig(nce_k=4000, feat_dim=8), teacher_dim=4, student_dim=4, train_labels=labels)
    batch = torch.tensor([0, 1, 2, 3])
    negatives = crd.negatives(batch)
    assert negatives.shape == (4, 4000)
    for row, label in zip(negatives, batch):
        assert (labels[row] != label).all()
        assert set(row.tolist()) == set((labels != label).nonzero().squeeze(1).tolist()), "uniform over the others"


def crd_loss_after_warm_up(alignment: float) -> float:
    """CRD on fixed teacher features and student features `alignment` of the way from noise to the teacher's,
    with identity embeddings; the memory banks are filled by a few passes, then one pass is scored."""
    torch.manual_seed(0)
    n, dim = 64, 16
    teacher, noise = torch.randn(n, dim), torch.randn(n, dim)
    student = alignment * teacher + (1 - alignment) * noise
    labels = torch.arange(n) % 8
    crd = CRD(CRDConfig(nce_k=32, feat_dim=dim), dim, dim, labels)
    for embed in (crd.embed_student, crd.embed_teacher):
        embed.linear.weight.data = torch.eye(dim)
        embed.linear.bias.data.zero_()
    losses = []
    for _ in range(4):
        for batch in torch.arange(n).split(16):
            feats = lambda f: [f[batch]]  # noqa: E731  (only the pooled vector is used)
            terms = crd(StudentBatch(torch.zeros(16, 8), torch.zeros(16, 8), labels[batch], ONE, feats(student),
                                     feats(teacher), batch))
            losses.append(terms["crd"].item())
    return float(np.mean(losses[-4:]))


def test_crd_loss_falls_as_student_and_teacher_embeddings_align() -> None:
    losses = [crd_loss_after_warm_up(a) for a in (0.0, 0.5, 1.0)]
    assert losses[0] > losses[1] > losses[2], losses


def test_crd_updates_its_memory_with_momentum_and_fixes_its_normalisers_once() -> None:
    labels = torch.tensor([0, 1] * 8)
    crd = CRD(CRDConfig(nce_k=8, feat_dim=4, nce_m=0.5), 6, 6, labels)
    before = crd.memory_student.clone()
    feats, idx = torch.randn(4, 6), torch.tensor([0, 3, 5, 9])
    crd(StudentBatch(torch.zeros(4, 2), torch.zeros(4, 2), labels[idx], ONE, [feats], [feats], idx))
    expected = F.normalize(0.5 * before[idx] + 0.5 * crd.embed_student(feats), dim=1)
    torch.testing.assert_close(crd.memory_student[idx], expected)
    untouched = torch.ones(16, dtype=torch.bool)
    untouched[idx] = False
    assert torch.equal(crd.memory_student[untouched], before[untouched])
    norm = crd.norm_student.clone()
    assert norm > 0
    crd(StudentBatch(torch.zeros(4, 2), torch.zeros(4, 2), labels[idx], ONE, [feats * 2], [feats], idx))
    assert torch.equal(crd.norm_student, norm), "Z is set on the first batch only (RepDistiller)"


def build(name: str, config, teacher, student):
    """`name`'s distiller for these nets, over a training set of 20 images in 10 classes."""
    context = BuildContext(teacher, student, feature_shapes(teacher), feature_shapes(student), torch.arange(20) % 10)
    return DISTILLERS.get(name).build(config, context)


@pytest.mark.parametrize("name", DISTILLERS.names())
def test_every_distiller_names_its_terms_after_itself_and_trains_its_own_parts(name: str) -> None:
    """The interface: terms `<name>` or `<name>_<part>`, finite, with gradients reaching the student and every
    trainable part the distiller owns (which it puts in its optimiser groups)."""
    torch.manual_seed(0)
    student, teacher = models.create("resnet8", 10), models.create("resnet14", 10).eval()
    distiller = build(name, DISTILLERS.get(name).Config(), teacher, student)
    x, labels, indices = torch.randn(8, 3, 32, 32), torch.arange(8) % 10, torch.arange(8)
    s_logits, s_feats = student(x, with_features=True)
    with torch.no_grad():
        t_logits, t_feats = teacher(x, with_features=True)
    terms = distiller(StudentBatch(s_logits, t_logits, labels, torch.tensor(30.0), s_feats, t_feats, indices))
    assert terms and all(key == name or key.startswith(f"{name}_") for key in terms)
    total = torch.stack(list(terms.values())).sum()
    assert torch.isfinite(total)
    total.backward()
    assert student.conv1.weight.grad is not None and student.conv1.weight.grad.abs().sum() > 0
    owned = [p for group in distiller.param_groups() for p in group["params"]]
    assert len(owned) == len([p for p in distiller.parameters() if p.requires_grad])
    assert distiller.extra_parameters() == sum(p.numel() for p in owned)
    assert all(p.grad is not None for p in owned)


def test_at_pairs_every_stage_by_default_and_checks_named_layers() -> None:
    student, teacher = models.create("resnet8", 10), models.create("resnet14", 10)
    assert build("at", ATConfig(), teacher, student).pairs == [(1, 1), (2, 2), (3, 3)]
    assert build("at", ATConfig(layers=("stage3",)), teacher, student).pairs == [(3, 3)]
    from distill.errors import UserError
    with pytest.raises(UserError, match="must be a feature map"):
        build("at", ATConfig(layers=("pool",)), teacher, student)
    assert isinstance(build("at", ATConfig(), teacher, student), AT)
    assert isinstance(build("fitnet", FitNetConfig(), teacher, student), FitNet)
