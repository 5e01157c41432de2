"""Teacher objectives behind one interface (`distill.teachers`): every registered objective builds and trains its
net, label smoothing is torch's smoothed cross-entropy, `distill.train mcmi` is the teacher command with the mcmi
objective, and `distill.train teacher --objective` takes each objective's own flags."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from distill import models, train
from distill.config import DataConfig, OptimConfig, RuntimeConfig, TeacherJob, fine_tune_recipe
from distill.data import load_raw, make_splits
from distill.errors import UserError
from distill.objectives import Batch
from distill.runs import build_teacher_run
from distill.teachers import TEACHER_OBJECTIVES, LabelSmoothingConfig, MCMIConfig, TeacherContext
from tests.conftest import assert_one_line_error, run_in_process

DIGITS = DataConfig(dataset="digits")
SHORT = OptimConfig(epochs=1, batch_size=64, lr=0.05, schedule="cosine", milestones=())


@pytest.fixture(scope="module")
def splits():
    return make_splits(load_raw("digits"), val_size=180, seed=0)


@pytest.mark.parametrize("name", TEACHER_OBJECTIVES.names())
def test_every_objective_builds_and_its_terms_train_the_net(name: str) -> None:
    torch.manual_seed(0)
    net = models.create("resnet8", 10)
    images, labels = torch.randn(16, 3, 32, 32), torch.arange(16) % 10
    context = TeacherContext(net, 10, lambda: (net(images).detach(), labels))
    objective = TEACHER_OBJECTIVES.get(name).build(TEACHER_OBJECTIVES.get(name).Config(), context)
    logits, terms = objective(Batch(images, labels, torch.tensor(1.0)))
    assert logits.shape == (16, 10) and terms and "ce" in terms
    total = torch.stack(list(terms.values())).sum()
    assert torch.isfinite(total)
    total.backward()
    assert net.conv1.weight.grad is not None and net.conv1.weight.grad.abs().sum() > 0


def test_label_smoothing_is_smoothed_cross_entropy_and_eps_zero_is_mll() -> None:
    torch.manual_seed(0)
    net = models.create("resnet8", 10)
    images, labels = torch.randn(8, 3, 32, 32), torch.arange(8) % 10
    context = TeacherContext(net, 10, lambda: pytest.fail("label smoothing needs no pass over train"))
    build = TEACHER_OBJECTIVES.get("label_smoothing").build
    logits, terms = build(LabelSmoothingConfig(eps=0.2), context)(Batch(images, labels, torch.tensor(1.0)))
    log_p = F.log_softmax(logits.detach().float(), dim=1)
    smoothed = 0.8 * F.one_hot(labels, 10) + 0.2 / 10
    assert terms["ce"].item() == pytest.approx(-(smoothed * log_p).sum(dim=1).mean().item(), rel=1e-5)
    _, plain = build(LabelSmoothingConfig(eps=0.0), context)(Batch(images, labels, torch.tensor(1.0)))
    _, mll = TEACHER_OBJECTIVES.get("mll").build(TEACHER_OBJECTIVES.get("mll").Config(), context)(
        Batch(images, labels, torch.tensor(1.0)))
    assert plain["ce"].item() == pytest.approx(mll["ce"].item(), rel=1e-6)
    for eps in (-0.1, 1.0):
        with pytest.raises(UserError, match=r"label_smoothing.eps must be in \[0, 1\)"):
            LabelSmoothingConfig(eps=eps).check()


def test_the_mcmi_command_is_the_teacher_command_with_the_mcmi_objective(tmp_path, splits) -> None:
    """`distill.train mcmi` and `teacher --objective mcmi --teacher-checkpoint` are one job (the fine-tuning recipe),
    and its run maximises CMI from the checkpoint's centroids."""
    teacher = build_teacher_run(TeacherJob(arch="resnet8", data=DIGITS, optim=SHORT), splits)
    list(teacher.trainer.epochs())
    weights = str(teacher.save_weights(tmp_path / "mll.pth"))
    common = ["--dataset", "digits", "--arch", "resnet8", "--teacher-checkpoint", weights, "--out", str(tmp_path)]
    alias = train.build_job(train.parse(["mcmi", *common, "--lam", "0.3"]))
    direct = train.build_job(train.parse(["teacher", *common, "--objective", "mcmi", "--mcmi-lam", "0.3"]))
    assert alias == direct and direct.objective == MCMIConfig(lam=0.3)
    assert direct.recipe() == fine_tune_recipe("resnet8")
    run = build_teacher_run(replace(direct, optim=SHORT, runtime=RuntimeConfig(seed=3, deterministic=True)), splits)
    (epoch,) = list(run.trainer.epochs())
    assert epoch.train_terms["neg_cmi"] < 0


def test_the_teacher_command_takes_the_objective_and_its_own_flags(tmp_path, capsys) -> None:
    base = ["teacher", "--dataset", "digits", "--arch", "resnet8", "--epochs", "1", "--batch-size", "64",
            "--out", str(tmp_path / "ls")]
    job = train.build_job(train.parse([*base, "--objective", "label_smoothing", "--label-smoothing-eps", "0.2"]))
    assert job.objective == LabelSmoothingConfig(eps=0.2) and job.teacher_checkpoint == ""
    assert train.build_job(train.parse(base)).objective.name() == "mll"
    result = run_in_process(train.main, *base, "--objective", "label_smoothing", capsys=capsys)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "ls" / "metrics.json").read_text())
    assert record["run"]["objective"] == {"name": "label_smoothing", "eps": 0.1}
    cases = [
        (["--objective", "label_smoothing", "--label-smoothing-eps", "1.5"], "label_smoothing.eps must be in [0, 1)"),
        (["--objective", "label_smoothing", "--mcmi-lam", "0.3"], "--mcmi-lam set the mcmi objective, but --objective "
                                                                   "is label_smoothing"),
        (["--objective", "focal"], "invalid choice: 'focal'"),
        (["--objective", "mcmi", "--mcmi-centroid-ema", "1.5"], "centroid EMA decay must be in [0, 1)"),
    ]
    for extra, fragment in cases:
        out = tmp_path / "bad"
        result = run_in_process(train.main, *[a if a != str(tmp_path / "ls") else str(out) for a in base], *extra,
                                capsys=capsys)
        assert_one_line_error(result, fragment)
        assert result.returncode == 2 and not out.exists()


def test_the_mll_teacher_cache_key_names_its_objective() -> None:
    from search import teacher_key

    job = TeacherJob(arch="resnet8", data=DIGITS)
    smoothed = replace(job, objective=LabelSmoothingConfig())
    assert teacher_key.cache_key(job, "d") != teacher_key.cache_key(smoothed, "d")
    assert teacher_key.identity(smoothed)["objective"] == {"name": "label_smoothing", "eps": 0.1}


def test_the_mcmi_objective_by_hand_centroids_from_the_starting_net_and_ce_minus_lambda_cmi() -> None:
    """MCMI's build and terms recomputed in float64: the centroids are the per-class mean softmax of the pass over
    train (a class without samples keeps zeros), `ce` is the plain cross-entropy and `neg_cmi` is -λ times the mean
    KL(P_x ‖ Q_y) against those frozen centroids; MLL's `ce` is the same cross-entropy."""
    import numpy as np

    from tests.test_losses import softmax64

    torch.manual_seed(0)
    net = models.create("resnet8", 4)
    train_logits = torch.randn(9, 4) * 2
    train_labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0, 1])  # class 3 has no sample
    context = TeacherContext(net, 4, lambda: (train_logits, train_labels))
    objective = TEACHER_OBJECTIVES.get("mcmi").build(MCMIConfig(lam=0.4), context)

    p_train = softmax64(train_logits.double().numpy())
    centroids = np.stack([p_train[train_labels.numpy() == c].mean(0) if c < 3 else np.zeros(4) for c in range(4)])
    np.testing.assert_allclose(objective.loss.centroids.numpy(), centroids, rtol=1e-5, atol=1e-7)

    images, labels = torch.randn(6, 3, 32, 32), torch.tensor([2, 0, 1, 1, 0, 2])
    logits, terms = objective.eval()(Batch(images, labels, torch.tensor(1.0)))
    p = softmax64(logits.detach().double().numpy())
    rows = np.arange(6)
    ce = -np.log(p[rows, labels.numpy()]).mean()
    cmi = (p * (np.log(p) - np.log(centroids[labels.numpy()]))).sum(axis=1).mean()
    assert terms.keys() == {"ce", "neg_cmi"}
    assert terms["ce"].item() == pytest.approx(ce, rel=1e-5)
    assert terms["neg_cmi"].item() == pytest.approx(-0.4 * cmi, rel=1e-4)
    _, mll = TEACHER_OBJECTIVES.get("mll").build(TEACHER_OBJECTIVES.get("mll").Config(), context)(
        Batch(images, labels, torch.tensor(1.0)))
    assert mll.keys() == {"ce"} and mll["ce"].item() == pytest.approx(ce, rel=1e-5)


@pytest.mark.parametrize("config, bad, good, message", [
    (MCMIConfig(), {"centroid_ema": (-0.1, 1.0)}, {"centroid_ema": (None, 0.0, 0.9999)},
     "centroid EMA decay must be in [0, 1), got {}"),
    (LabelSmoothingConfig(), {"eps": (-0.1, 1.0)}, {"eps": (0.0, 0.999)}, "label_smoothing.eps must be in [0, 1), got {}"),
])
def test_each_teacher_objective_refuses_a_value_outside_its_range_in_its_own_words(config, bad, good, message):
    for field, values in bad.items():
        for value in values:
            with pytest.raises(UserError) as refused:
                replace(config, **{field: value}).check()
            assert str(refused.value) == message.format(value)
    for field, values in good.items():
        for value in values:
            replace(config, **{field: value}).check()


def test_the_mcmi_objective_keeps_the_centroid_ema_it_was_given():
    net = models.create("resnet8", 3)
    context = TeacherContext(net, 3, lambda: (torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])))
    build = TEACHER_OBJECTIVES.get("mcmi").build
    assert build(MCMIConfig(lam=0.1, centroid_ema=0.9), context).loss.ema_decay == 0.9
    assert build(MCMIConfig(lam=0.1), context).loss.ema_decay is None
