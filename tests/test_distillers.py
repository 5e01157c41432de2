"""Each distiller against a hand computation on a tiny batch, and the interface every distiller keeps."""
from __future__ import annotations

import math

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
    with pytest.raises(UserError) as refused:
        build("at", ATConfig(layers=("pool",)), teacher, student)
    assert str(refused.value) == "attention layer 'pool' must be a feature map, not the pooled vector"
    with pytest.raises(UserError) as refused:
        build("at", ATConfig(layers=()), teacher, student)
    assert str(refused.value) == "attention transfer needs at least one feature map (--at-layers)"
    assert isinstance(build("at", ATConfig(), teacher, student), AT)
    assert isinstance(build("fitnet", FitNetConfig(), teacher, student), FitNet)


def softplus64(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def jsd_bound64(joint: np.ndarray, marginal: np.ndarray) -> float:
    """Deep InfoMax's Jensen-Shannon bound, E_joint[-softplus(-T)] - E_marginal[softplus(T)], in float64."""
    return float((-softplus64(-joint)).mean() - softplus64(marginal).mean())


def linear_stack64(linears: list[torch.nn.Linear], x: np.ndarray) -> np.ndarray:
    """An MLP from its Linear layers' weights: ReLU between layers, none after the last."""
    for i, layer in enumerate(linears):
        x = x @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy()
        if i < len(linears) - 1:
            x = np.maximum(x, 0.0)
    return x


def linears(module: torch.nn.Module) -> list[torch.nn.Linear]:
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear)]


def conv1x1_64(conv: torch.nn.Conv2d, x: np.ndarray) -> np.ndarray:
    """A 1x1 convolution of [B, C, H, W] as a matrix product over channels."""
    weight = conv.weight.detach().double().numpy()[:, :, 0, 0]
    return np.einsum("oc,bchw->bohw", weight, x) + conv.bias.detach().double().numpy()[None, :, None, None]


def block_mean64(x: np.ndarray, size: int) -> np.ndarray:
    """Average pooling of a [B, C, H, W] map onto size x size (H a multiple of size)."""
    b, c, h, w = x.shape
    return x.reshape(b, c, size, h // size, size, w // size).mean(axis=(3, 5))


def global_critic64(critic: torch.nn.Module, kind: str, t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The global critic's score of each (teacher, student) row pair, from its weights."""
    if kind == "concat":
        return linear_stack64(linears(critic), np.concatenate([t, s], axis=1))[:, 0]
    embed = linear_stack64(linears(critic.teacher_encoder), t) * linear_stack64(linears(critic.student_encoder), s)
    return embed.sum(axis=1) / math.sqrt(linears(critic.teacher_encoder)[-1].out_features)


def local_critic64(critic: torch.nn.Module, t: np.ndarray, s: np.ndarray) -> float:
    """One local critic's MI bound: both maps on the smaller grid, encoded per position, scored by a dot product,
    negatives pairing each teacher map with the other sample's student map (a batch of two)."""
    size = min(t.shape[2], s.shape[2])
    t, s = block_mean64(t, size), block_mean64(s, size)

    def encode(encoder, x):
        first, _, second = encoder
        return conv1x1_64(second, np.maximum(conv1x1_64(first, x), 0.0))

    te, se = encode(critic.teacher_encoder, t), encode(critic.student_encoder, s)
    scale = 1 / math.sqrt(te.shape[1])
    joint, marginal = (te * se).sum(axis=1) * scale, (te * se[::-1]).sum(axis=1) * scale
    return jsd_bound64(joint, marginal)


@pytest.mark.parametrize("critic, depth", [("separable", 1), ("concat", 2)])
def test_mimkd_terms_are_minus_beta_times_the_jsd_bounds_by_hand(critic: str, depth: int) -> None:
    """MIMKD's two terms recomputed in float64 from the critics' weights: mimkd_global = -β_g · I_JSD(pooled), and
    mimkd_local = -β_l · the mean over layers of I_JSD(maps), each map pair on the smaller grid. A batch of two makes
    the negative sample the other image, whatever offset the roll draws. Distinct β's catch one standing for the
    other; two local layers, one pooled each way, catch a sum for the mean and the wrong map pooled."""
    from distill.losses.mimkd import MIMKD, MIMKDConfig

    torch.manual_seed(0)
    teacher_shapes = [torch.Size(s) for s in ((4, 8, 8), (6, 8, 8), (10, 4, 4), (10,))]
    student_shapes = [torch.Size(s) for s in ((3, 8, 8), (5, 4, 4), (7, 8, 8), (7,))]
    config = MIMKDConfig(critic=critic, critic_depth=depth, critic_width=12, critic_embed=8, beta_global=0.7,
                         beta_local=2.5, critic_lr_mult=3.0)
    mimkd = MIMKD(config, teacher_shapes, student_shapes, local_pairs=[(1, 1), (2, 2)])
    t_feats = [torch.randn(2, *shape) for shape in teacher_shapes]
    s_feats = [torch.randn(2, *shape) for shape in student_shapes]
    terms = mimkd(StudentBatch(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0, 1]), ONE, s_feats, t_feats))

    as64 = lambda f: f.double().numpy()  # noqa: E731
    t, s = as64(t_feats[-1]), as64(s_feats[-1])
    scores = lambda s_rows: global_critic64(mimkd.global_critic, critic, t, s_rows)  # noqa: E731
    i_global = jsd_bound64(scores(s), scores(s[::-1]))
    i_local = [local_critic64(c, as64(t_feats[ti]), as64(s_feats[si]))
               for c, (ti, si) in zip(mimkd.local_critics, [(1, 1), (2, 2)])]
    assert terms.keys() == {"mimkd_global", "mimkd_local"}
    assert terms["mimkd_global"].item() == pytest.approx(-0.7 * i_global, rel=1e-5, abs=1e-6)
    assert terms["mimkd_local"].item() == pytest.approx(-2.5 * float(np.mean(i_local)), rel=1e-5, abs=1e-6)
    assert len(linears(mimkd.global_critic)) == (depth + 1 if critic == "concat" else 2 * (depth + 1))
    assert linears(mimkd.global_critic)[0].out_features == 12, "the configured width"
    assert mimkd.param_groups()[0]["lr_mult"] == 3.0


def test_mimkd_leaves_out_a_term_whose_weight_is_zero() -> None:
    from distill.losses.mimkd import MIMKD, MIMKDConfig

    shapes = [torch.Size(s) for s in ((4, 4, 4), (6,))]
    feats = [torch.randn(3, 4, 4, 4), torch.randn(3, 6)]
    batch = StudentBatch(torch.zeros(3, 2), torch.zeros(3, 2), torch.tensor([0, 1, 0]), ONE, feats, feats)
    only_local = MIMKD(MIMKDConfig(beta_global=0.0, critic_width=8, critic_embed=4), shapes, shapes, [(0, 0)])
    only_global = MIMKD(MIMKDConfig(beta_local=0.0, critic_width=8, critic_embed=4), shapes, shapes, [(0, 0)])
    no_layers = MIMKD(MIMKDConfig(critic_width=8, critic_embed=4), shapes, shapes, [])
    assert only_local(batch).keys() == {"mimkd_local"} and only_global(batch).keys() == {"mimkd_global"}
    assert no_layers(batch).keys() == {"mimkd_global"}


def test_a_negative_is_always_another_sample_and_every_other_one_is_drawn() -> None:
    from distill.losses.mimkd import shuffled_partner

    torch.manual_seed(0)
    rows = torch.arange(5)
    offsets = {int((rows - shuffled_partner(rows))[0]) % 5 for _ in range(200)}
    assert offsets == {1, 2, 3, 4}, "a roll by 1..B-1: never the sample itself"
    assert shuffled_partner(torch.tensor([7])).tolist() == [7], "a batch of one has no other sample"


def test_the_jsd_bound_by_hand() -> None:
    from distill.losses.mimkd import jsd_mi_lower_bound

    joint, marginal = np.array([2.0, -1.0, 0.5]), np.array([-0.3, 1.2])
    got = jsd_mi_lower_bound(torch.tensor(joint), torch.tensor(marginal)).item()
    assert got == pytest.approx(jsd_bound64(joint, marginal), rel=1e-12)
    assert got == pytest.approx((-math.log1p(math.exp(-2)) - math.log1p(math.exp(1)) - math.log1p(math.exp(-0.5))) / 3
                                - (math.log1p(math.exp(-0.3)) + math.log1p(math.exp(1.2))) / 2, rel=1e-12)


def test_the_kd_term_is_alpha_times_t_squared_times_the_kl_by_hand() -> None:
    s, t, y = logits_batch(5)
    kd = DISTILLERS.get("kd")(DISTILLERS.get("kd").Config(alpha=0.3, temperature=2.0))
    terms = kd(StudentBatch(torch.tensor(s).float(), torch.tensor(t).float(), torch.tensor(y), ONE))
    expected = 0.3 * 2.0**2 * kl64(softmax64(t / 2.0), softmax64(s / 2.0)).mean()
    assert terms.keys() == {"kd"} and terms["kd"].item() == pytest.approx(expected, rel=1e-5)


def test_the_at_term_is_its_weight_times_the_sum_over_pairs() -> None:
    rng = np.random.default_rng(6)
    student = [torch.tensor(rng.normal(size=shape), dtype=torch.float32) for shape in ((2, 3, 4, 4), (2, 5, 2, 2))]
    teacher = [torch.tensor(rng.normal(size=shape), dtype=torch.float32) for shape in ((2, 4, 4, 4), (2, 6, 2, 2))]

    def attention(f: torch.Tensor) -> np.ndarray:
        a = (f.double().numpy() ** 3).mean(1).reshape(len(f), -1)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    at = AT(ATConfig(p=3.0, weight=50.0), pairs=[(0, 0), (1, 1)])
    terms = at(StudentBatch(torch.zeros(2, 2), torch.zeros(2, 2), torch.tensor([0, 1]), ONE, student, teacher))
    expected = 50.0 * sum(((attention(s) - attention(t)) ** 2).mean() for s, t in zip(student, teacher))
    assert terms["at"].item() == pytest.approx(expected, rel=1e-5)


def test_the_crd_term_by_hand_from_its_embeddings_memory_and_negatives() -> None:
    """One CRD step recomputed in float64: embed both pooled vectors (linear, L2 norm), score each against the other
    side's memory at [own index, negatives] by exp(m · v / τ), normalise by Z = mean score · N, and add the two
    directions' NCE losses, times the weight. The negatives are the ones the same random state draws."""
    torch.manual_seed(0)
    labels = torch.arange(24) % 4
    crd = CRD(CRDConfig(weight=0.6, feat_dim=6, nce_k=5, nce_t=0.2), teacher_dim=7, student_dim=5, train_labels=labels)
    idx = torch.tensor([3, 10, 17])
    s_feat, t_feat = torch.randn(3, 5), torch.randn(3, 7)
    memory_s, memory_t = crd.memory_student.double().numpy().copy(), crd.memory_teacher.double().numpy().copy()
    state = torch.get_rng_state()
    negatives = crd.negatives(labels[idx])
    torch.set_rng_state(state)
    terms = crd(StudentBatch(torch.zeros(3, 4), torch.zeros(3, 4), labels[idx], ONE, [s_feat], [t_feat], idx))

    def embed(linear, x):
        v = linear_stack64([linear], x.double().numpy())
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    index = np.concatenate([idx.numpy()[:, None], negatives.numpy()], axis=1)

    def nce(v, memory):
        scores = np.exp(np.einsum("bkd,bd->bk", memory[index], v) / 0.2)
        scores = scores / (scores.mean() * 24)
        noise = 5 / 24
        return -(np.log(scores[:, 0] / (scores[:, 0] + noise + 1e-7)).sum()
                 + np.log(noise / (scores[:, 1:] + noise + 1e-7)).sum()) / 3

    expected = 0.6 * (nce(embed(crd.embed_student.linear, s_feat), memory_t)
                      + nce(embed(crd.embed_teacher.linear, t_feat), memory_s))
    assert terms["crd"].item() == pytest.approx(expected, rel=1e-5)


def test_the_student_objective_is_ce_weight_times_ce_plus_each_distillers_terms() -> None:
    from distill.objectives import Batch, DistillationObjective

    torch.manual_seed(0)
    student, teacher = models.create("resnet8", 10), models.create("resnet8", 10)
    kd = DISTILLERS.get("kd")(DISTILLERS.get("kd").Config(alpha=0.4, temperature=3.0))
    objective = DistillationObjective(student, teacher, ce_weight=0.25, distillers={"kd": kd}).train()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([1, 2, 3, 4])
    logits, terms = objective(Batch(x, y, ONE))
    with torch.no_grad():
        t_logits = teacher.eval()(x)
    s64, t64 = logits.detach().double().numpy(), t_logits.double().numpy()
    ce = -np.log(softmax64(s64)[np.arange(4), y.numpy()]).mean()
    assert terms.keys() == {"ce", "kd"} and not objective.teacher.training, "the teacher stays in eval mode"
    assert terms["ce"].item() == pytest.approx(0.25 * ce, rel=1e-5)
    assert terms["kd"].item() == pytest.approx(0.4 * 9.0 * kl64(softmax64(t64 / 3), softmax64(s64 / 3)).mean(),
                                               rel=1e-4)
    assert "ce" not in DistillationObjective(student, teacher, 0.0, {"kd": kd})(Batch(x, y, ONE))[1]


@pytest.mark.parametrize("name, field, bad, good, message", [
    ("kd", "temperature", (0.0, -1.0), (1e-9,), "kd.temperature must be positive, got {}"),
    ("dkd", "temperature", (0.0,), (1e-9,), "dkd.temperature must be positive, got {}"),
    ("dkd", "warmup", (-1,), (0,), "dkd.warmup must not be negative, got {}"),
    ("crd", "nce_t", (0.0,), (1e-9,), "crd.nce_t must be positive, got {}"),
    ("crd", "nce_k", (0,), (1,), "crd.nce_k must be positive, got {}"),
    ("crd", "feat_dim", (0,), (1,), "crd.feat_dim must be positive, got {}"),
    ("crd", "nce_m", (-0.1, 1.0), (0.0, 0.999), "crd.nce_m must be in [0, 1), got {}"),
    ("mimkd", "critic", ("bilinear",), ("concat", "separable"), "unknown critic 'bilinear'; choose one of: "
                                                             "concat, separable"),
])
def test_each_distiller_config_refuses_a_value_outside_its_range_in_its_own_words(name, field, bad, good, message):
    """The check fires on each bad value, with the field's search key and the value, and passes the boundary's
    good side."""
    from dataclasses import replace

    from distill.errors import UserError

    config = DISTILLERS.get(name).Config()
    for value in bad:
        with pytest.raises(UserError) as refused:
            replace(config, **{field: value}).check()
        assert str(refused.value) == message.format(value)
    for value in good:
        replace(config, **{field: value}).check()


def test_only_a_distiller_with_a_config_can_be_registered(monkeypatch):
    from distill.losses.base import Distiller, register_distiller

    monkeypatch.setattr(DISTILLERS, "_entries", dict(DISTILLERS._entries))  # the registry as it was, after the test

    class NoConfig(Distiller):
        pass

    class Plain:
        Config = DISTILLERS.get("kd").Config

    for wrong in (NoConfig, Plain, len):
        with pytest.raises(TypeError, match=r"must be a Distiller subclass with a Config$"):
            register_distiller("wrong")(wrong)

    class Good(Distiller):
        Config = DISTILLERS.get("kd").Config

    assert register_distiller("good")(Good) is Good and DISTILLERS.get("good") is Good and "wrong" not in DISTILLERS


@pytest.mark.parametrize("student_shape, teacher_shape", [((2, 3, 8, 4), (2, 5, 4, 2)), ((2, 3, 4, 2), (2, 5, 8, 4))])
def test_at_pools_whichever_map_is_larger_onto_the_others_grid(student_shape, teacher_shape):
    """Non-square maps, the student's larger in one case and the teacher's in the other: the larger is averaged in
    2x2 blocks onto the smaller's 4x2 grid before the attention maps are compared."""
    rng = np.random.default_rng(7)
    s, t = rng.normal(size=student_shape), rng.normal(size=teacher_shape)

    def attention(f: np.ndarray) -> np.ndarray:
        if f.shape[2] == 8:
            f = f.reshape(2, f.shape[1], 4, 2, 2, 2).mean(axis=(3, 5))
        a = (f**2).mean(1).reshape(len(f), -1)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    got = attention_loss(torch.tensor(s, dtype=torch.float32), torch.tensor(t, dtype=torch.float32), 2.0)
    assert got.item() == pytest.approx(((attention(s) - attention(t)) ** 2).mean(), rel=1e-5)


def test_a_local_mi_layer_must_be_a_feature_map():
    from distill.errors import UserError
    from distill.losses.mimkd import MIMKDConfig

    student, teacher = models.create("resnet8", 10), models.create("resnet14", 10)
    with pytest.raises(UserError) as refused:
        build("mimkd", MIMKDConfig(local_layers=("stage2", "pool")), teacher, student)
    assert str(refused.value) == "local MI layer 'pool' must be a feature map, not the pooled vector"
    assert build("mimkd", MIMKDConfig(local_layers=("stage2", "-2")), teacher, student).local_pairs == [(2, 2), (3, 3)]


def test_dkd_without_warm_up_weighs_its_terms_fully_from_the_first_epoch():
    s, t, y = (torch.tensor(a) for a in logits_batch(8))
    tckd, nckd = dkd_parts(s.float(), t.float(), y, 4.0)
    terms = DKD(DKDConfig(alpha=2.0, beta=8.0, warmup=0))(StudentBatch(s.float(), t.float(), y, ONE))
    torch.testing.assert_close(terms["dkd_tckd"], 2.0 * tckd.mean())
    torch.testing.assert_close(terms["dkd_nckd"], 8.0 * nckd.mean())


def test_crd_fixes_its_normaliser_on_the_first_batch_even_when_it_is_below_one():
    """Z = mean score · N is set once, whatever its size: with student embeddings opposite to every memory entry the
    scores are exp(-1 / 0.07) and Z is far below 1; a second, different batch leaves it as it was."""
    labels = torch.tensor([0, 1] * 8)
    crd = CRD(CRDConfig(nce_k=4, feat_dim=4, nce_t=0.07), 4, 4, labels)
    crd.embed_student.linear.weight.data, crd.embed_student.linear.bias.data = torch.eye(4), torch.zeros(4)
    crd.memory_teacher.copy_(F.normalize(torch.ones(16, 4), dim=1))
    idx = torch.tensor([0, 1, 2, 3])
    crd(StudentBatch(torch.zeros(4, 2), torch.zeros(4, 2), labels[idx], ONE, [-torch.ones(4, 4)], [torch.ones(4, 4)],
                     idx))
    first = crd.norm_student.item()
    assert 0 < first < 1e-4 and first == pytest.approx(16 * math.exp(-1 / 0.07), rel=1e-4)
    crd(StudentBatch(torch.zeros(4, 2), torch.zeros(4, 2), labels[idx], ONE, [torch.ones(4, 4)], [torch.ones(4, 4)],
                     idx))
    assert crd.norm_student.item() == first


def test_the_nce_epsilon_is_added_where_scores_are_tiny():
    """RepDistiller's 1e-7 in both denominators, visible when the scores and the noise mass are near it."""
    scores, num_data = np.array([[2e-7, 1e-7, 3e-7]]), 2_000_000  # noise mass 2 / 2e6 = 1e-6
    noise, eps = 2 / num_data, 1e-7
    expected = -(np.log(scores[0, 0] / (scores[0, 0] + noise + eps))
                 + np.log(noise / (scores[0, 1:] + noise + eps)).sum())
    assert nce_loss(torch.tensor(scores), num_data).item() == pytest.approx(expected, rel=1e-9)


def test_crd_memory_starts_uniform_in_plus_minus_one_over_root_d_over_3_and_keeps_only_its_banks():
    """RepDistiller's init: each bank uniform on [-s, s], s = 1 / sqrt(feat_dim / 3); the banks and normalisers are in
    the checkpoint, the class index (rebuilt from the labels) is not."""
    torch.manual_seed(0)
    crd = CRD(CRDConfig(nce_k=4, feat_dim=12), 4, 4, torch.arange(2000) % 5)
    bound = 1 / math.sqrt(12 / 3)
    for bank in (crd.memory_student, crd.memory_teacher):
        assert bank.min() >= -bound and bank.max() <= bound
        assert bank.min() < -0.999 * bound and bank.max() > 0.999 * bound and abs(bank.mean()) < 0.01
    assert crd.norm_student.item() < 0 and crd.norm_teacher.item() < 0, "unset until the first batch"
    buffers = {k for k in crd.state_dict() if not k.startswith("embed_")}
    assert buffers == {"memory_student", "memory_teacher", "norm_student", "norm_teacher"}
    with pytest.raises(Exception, match="needs two classes"):
        CRD(CRDConfig(nce_k=4, feat_dim=4), 4, 4, torch.zeros(6, dtype=torch.long))


def test_crd_negatives_are_uniform_over_the_other_classes_and_drawn_per_sample():
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3])
    crd = CRD(CRDConfig(nce_k=9000, feat_dim=4), 4, 4, labels)
    negatives = crd.negatives(torch.tensor([0, 0]))
    counts = torch.bincount(negatives[0], minlength=12)
    assert counts[:3].sum() == 0 and counts[3:].min() > 0.85 * 1000 and counts[3:].max() < 1.15 * 1000
    assert not torch.equal(negatives[0], negatives[1]), "each sample draws its own"


def test_crd_and_fitnet_name_their_problem():
    from distill.errors import UserError

    with pytest.raises(UserError) as refused:
        CRD(CRDConfig(nce_k=4, feat_dim=4), 4, 4, torch.zeros(6, dtype=torch.long))
    assert str(refused.value) == ("CRD draws negatives from other classes: the student's training set needs two "
                                  "classes")
    student, teacher = models.create("resnet8", 10), models.create("resnet14", 10)
    with pytest.raises(UserError) as refused:
        build("fitnet", FitNetConfig(layer="pool"), teacher, student)
    assert str(refused.value) == "FitNet hint layer 'pool' must be a feature map, not the pooled vector"


def test_fitnets_regressor_is_repdistillers_convreg_for_each_size_relation():
    """Twice as large: 3x3 conv, stride 2, padding 1; half as large: 4x4 transposed conv, stride 2, padding 1;
    otherwise a valid conv of the size difference plus one; then BatchNorm and ReLU, always."""
    down = regressor(torch.Size([4, 16, 16]), torch.Size([6, 8, 8]))
    up = regressor(torch.Size([4, 4, 4]), torch.Size([6, 8, 8]))
    same = regressor(torch.Size([4, 8, 6]), torch.Size([6, 8, 4]))
    assert (type(down[0]), down[0].kernel_size, down[0].stride, down[0].padding) == (torch.nn.Conv2d, (3, 3), (2, 2),
                                                                                     (1, 1))
    assert (type(up[0]), up[0].kernel_size, up[0].stride, up[0].padding) == (torch.nn.ConvTranspose2d, (4, 4), (2, 2),
                                                                             (1, 1))
    assert (type(same[0]), same[0].kernel_size, same[0].stride) == (torch.nn.Conv2d, (1, 3), (1, 1))
    for reg in (down, up, same):
        assert [type(m) for m in reg] == [type(reg[0]), torch.nn.BatchNorm2d, torch.nn.ReLU]
        assert reg[1].num_features == 6
        assert (reg(torch.randn(2, 4, *reg_input(reg))) >= 0).all(), "ReLU last"
    from distill.errors import UserError
    with pytest.raises(UserError) as refused:
        regressor(torch.Size([4, 8, 4]), torch.Size([6, 8, 8]))
    assert str(refused.value) == ("FitNet cannot map a student map of 8x4 onto a teacher map of 8x8; choose another "
                                  "--fitnet-layer")


def reg_input(reg: torch.nn.Sequential) -> tuple[int, int]:
    """The student map size each regressor of the test above was built for."""
    return {(3, 3): (16, 16), (4, 4): (4, 4), (1, 3): (8, 6)}[tuple(reg[0].kernel_size)]


def test_a_feature_map_pair_needs_a_map_on_both_nets():
    from types import SimpleNamespace

    from distill.errors import UserError

    by_index = SimpleNamespace(feature_index=int)
    context = BuildContext(by_index, by_index, [torch.Size([4, 8, 8]), torch.Size([6, 4, 4]), torch.Size([8])],
                           [torch.Size([4, 8, 8]), torch.Size([6]), torch.Size([6, 2, 2])], torch.arange(4))
    assert context.feature_map_pair("0", "hint") == (0, 0)
    for key in ("1", "2"):
        with pytest.raises(UserError) as refused:
            context.feature_map_pair(key, "hint")
        assert str(refused.value) == f"hint layer {key!r} must be a feature map, not the pooled vector"


def test_fitnet_maps_the_students_map_onto_the_teachers_at_each_nets_own_index():
    """A hint layer that sits at index 1 on the student and 2 on the teacher (nets of different depth)."""
    from types import SimpleNamespace

    teacher = SimpleNamespace(feature_index={"hint": 2}.get)
    student = SimpleNamespace(feature_index={"hint": 1}.get)
    context = BuildContext(teacher, student, [torch.Size([3, 32, 32]), torch.Size([5, 16, 16]), torch.Size([6, 8, 8]),
                                              torch.Size([6])],
                           [torch.Size([3, 32, 32]), torch.Size([4, 16, 16]), torch.Size([4])], torch.arange(4))
    fitnet = DISTILLERS.get("fitnet").build(FitNetConfig(layer="hint"), context)
    assert fitnet.regress(torch.randn(2, 4, 16, 16)).shape == (2, 6, 8, 8)


def test_a_distiller_without_trainable_parts_adds_no_optimiser_group():
    kd, at = DISTILLERS.get("kd")(DISTILLERS.get("kd").Config()), AT(ATConfig(), pairs=[(1, 1)])
    assert kd.param_groups() == [] and at.param_groups() == [] and kd.extra_parameters() == 0
