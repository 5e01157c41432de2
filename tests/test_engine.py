"""The engine on real data (digits): it learns, resume is exact (whether KD helps a few-shot student is measured
by bench/distillers_digits.py, BENCHMARKS.md)."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from distill.config import DataConfig, OptimConfig, RuntimeConfig, StudentJob, TeacherJob
from distill.teachers import MCMIConfig
from distill.losses import DISTILLERS, KDConfig, MIMKDConfig
from distill.losses.crd import CRDConfig
from distill.data import load_raw, make_splits
from distill.engine import NonFiniteLossError
from distill.runs import build_student_run, build_teacher_run
from tests.conftest import assert_one_line_error, run_in_process, run_module

DIGITS = DataConfig(dataset="digits")
COSINE = dict(lr=0.05, schedule="cosine", milestones=())


@pytest.fixture(scope="module")
def splits():
    return make_splits(load_raw("digits"), val_size=180, seed=0)


@pytest.fixture(scope="module")
def teacher_run(splits):
    run = build_teacher_run(TeacherJob(arch="resnet8", data=DIGITS, optim=OptimConfig(epochs=8, **COSINE)), splits)
    run.results = list(run.trainer.epochs())
    return run


def test_teacher_learns_digits(teacher_run) -> None:
    results = teacher_run.results
    assert results[-1].val_acc > 0.7, "far above the 10% of chance"
    assert results[-1].train_loss < results[0].train_loss
    assert results[-1].val_acc_max == max(r.val_acc for r in results)
    metrics = results[-1].metrics()
    assert {"train_loss_ce", "val_acc", "val_acc_max", "val_cmi", "lr", "images_per_sec"} <= metrics.keys()
    assert {"val_nll", "val_ece", "val_brier", "val_entropy"} <= metrics.keys() and "val_kl_bayes" not in metrics
    assert teacher_run.test_metrics()["test_acc"] > 0.7


def final_state(run) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in run.trainer.objective.trainable_state_dict().items()}


SMALL_MIMKD = MIMKDConfig(critic_width=32, critic_embed=16, local_layers=("stage2",))
RESUMED = {  # each distiller's own state: critics and RNG-drawn negatives, memory banks, regressors, the warm-up
    "kd+mimkd": {"kd": KDConfig(), "mimkd": SMALL_MIMKD},
    "crd": {"crd": CRDConfig(nce_k=64)},
    "dkd+fitnet+at": {name: DISTILLERS.get(name).Config() for name in ("dkd", "fitnet", "at")},
}


@pytest.mark.parametrize("distillers", sorted(RESUMED))
def test_resume_matches_an_uninterrupted_run(tmp_path: Path, splits, teacher_run, distillers: str) -> None:
    """3 epochs straight equal 1 epoch, a checkpoint, a fresh process-like rebuild, and 2 more epochs, bit for bit:
    every distiller's trained parts and buffers (CRD's memory banks and normalisers) included."""
    few = make_splits(load_raw("digits"), 180, 0, few_shot_fraction=0.15)
    weights = teacher_run.save_weights(tmp_path / "teacher.pth")
    job = StudentJob(arch="resnet8", teacher_arch="resnet8", teacher_checkpoint=str(weights),
                     optim=OptimConfig(epochs=3, batch_size=32, lr=0.05, milestones=(2,)),
                     runtime=RuntimeConfig(seed=5, deterministic=True), distillers=RESUMED[distillers])
    straight = build_student_run(job, few)
    straight_results = [r.metrics() for r in straight.trainer.epochs()]

    first = build_student_run(job, few)
    next(first.trainer.epochs())
    first.save_checkpoint(tmp_path / "ckpt.pth")
    torch.manual_seed(123)  # disturb the global RNG: resume must restore it
    resumed = build_student_run(job, few)
    resumed.resume(tmp_path / "ckpt.pth")
    resumed_results = [r.metrics() for r in resumed.trainer.epochs()]

    expected, got = final_state(straight), final_state(resumed)
    assert expected.keys() == got.keys()
    assert distillers == "dkd+fitnet+at" or any(k.startswith("distillers.") for k in got)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    for a, b in zip(straight_results[1:], resumed_results):
        assert a["val_acc"] == b["val_acc"] and a["train_loss"] == b["train_loss"]
    assert [h["epoch"] for h in resumed.trainer.history] == [1, 2, 3]


def test_mcmi_run_starts_from_frozen_teacher_centroids(tmp_path: Path, splits, teacher_run) -> None:
    weights = teacher_run.save_weights(tmp_path / "mll.pth")
    job = TeacherJob(arch="resnet8", teacher_checkpoint=str(weights), optim=OptimConfig(epochs=1, **COSINE),
                     objective=MCMIConfig(lam=0.5))
    run = build_teacher_run(job, splits)
    centroids = run.trainer.objective.loss.centroids.clone()
    assert centroids.shape == (10, 10) and torch.allclose(centroids.sum(1), torch.ones(10))
    result = next(run.trainer.epochs())
    assert result.train_terms["neg_cmi"] < 0, "lambda > 0 subtracts CMI from the loss"
    assert torch.equal(run.trainer.objective.loss.centroids, centroids), "frozen without EMA"


def test_non_finite_loss_stops_the_run(tmp_path: Path, splits, teacher_run) -> None:
    weights = teacher_run.save_weights(tmp_path / "mll.pth")
    job = TeacherJob(arch="resnet8", teacher_checkpoint=str(weights), optim=OptimConfig(epochs=1, **COSINE),
                     objective=MCMIConfig(lam=float("inf")))
    with pytest.raises(NonFiniteLossError, match="loss is not finite in epoch 1, by step 1"):
        next(build_teacher_run(job, splits).trainer.epochs())


def test_cli_help_explains_the_three_runs() -> None:
    result = run_module("distill.train", "--help")
    assert result.returncode == 0
    assert all(word in result.stdout for word in ("teacher", "mcmi", "student", "MIMKD", "--test"))


@pytest.mark.slow
def test_cli_trains_resumes_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "t"
    first = run_module("distill.train", "teacher", "--dataset", "digits", "--arch", "resnet8",
                       "--epochs", "1", "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert "epoch 1/1" in first.stdout and (out / "weights.pth").is_file()
    assert re.search(r"^epoch 1/1  loss \S+ \(ce \S+\)  val \d+\.\d\d% \(best .*  \d+ img/s  \S+s  ~0:00 left$", first.stdout,
                     re.MULTILINE), first.stdout
    again = run_module("distill.train", "teacher", "--dataset", "digits", "--arch", "resnet8",
                       "--epochs", "1", "--out", str(out))
    assert_one_line_error(again, "checkpoint.pth exists", "--resume")
    student = run_module("distill.train", "student", "--dataset", "digits", "--arch", "resnet8",
                         "--teacher", "resnet8", "--teacher-checkpoint", str(out / "weights.pth"),
                         "--epochs", "1", "--distiller", "kd", "mimkd", "--zero-shot-classes", "4", "--test",
                         "--val-size", "0", "--out", str(tmp_path / "s"))
    assert student.returncode == 0, student.stderr
    assert "loss: 0.1 CE + kd + mimkd (+" in student.stdout
    epoch = next(line for line in student.stdout.splitlines() if line.startswith("epoch 1/1"))
    assert " val " not in epoch and "img/s" in epoch  # no validation split: no NaN validation numbers either
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert {"train_loss_kd", "train_loss_mimkd_global", "train_loss_mimkd_local"} <= metrics["final"].keys()
    assert not any(key.startswith("val_") for key in metrics["final"])
    assert "test_acc_class_4" in metrics["test"] and metrics["run"]["data"]["zero_shot_classes"] == [4]
    assert {"test_acc", "test_nll", "test_ece", "test_brier", "test_entropy"} <= metrics["test"].keys()


def test_cli_bad_inputs(tmp_path: Path, capsys) -> None:
    from distill import train

    missing = run_in_process(train.main, "student", "--dataset", "digits", "--teacher-checkpoint",
                         str(tmp_path / "none.pth"), "--out", str(tmp_path / "o"), capsys=capsys)
    assert_one_line_error(missing, "checkpoint not found")
    unknown = run_in_process(train.main, "teacher", "--dataset", "digits", "--arch", "resnet9", "--out", str(tmp_path / "o"), capsys=capsys)
    assert_one_line_error(unknown, "unknown model 'resnet9'")
    unchosen = run_in_process(train.main, "student", "--dataset", "digits", "--teacher-checkpoint", "t.pth",
                          "--distiller", "kd", "--crd-nce-k", "5", "--out", str(tmp_path / "o"), capsys=capsys)
    assert_one_line_error(unchosen, "--crd-nce-k set crd, which is not among --distiller kd")
    bad_epochs = run_in_process(train.main, "teacher", "--dataset", "digits", "--epochs", "0", "--out", str(tmp_path / "o"), capsys=capsys)
    assert_one_line_error(bad_epochs, "must be positive")
    (tmp_path / "taken").write_text("a file")
    on_a_file = run_in_process(train.main, "teacher", "--dataset", "digits", "--epochs", "1", "--out",
                           str(tmp_path / "taken"), capsys=capsys)
    assert_one_line_error(on_a_file, "--out", "is a file")  # once a crash after a full epoch of training
    assert (tmp_path / "taken").read_text() == "a file"
    assert not (tmp_path / "o").exists(), "nothing is written for a rejected run"


def test_bf16_autocast_and_channels_last_paths_train(splits, teacher_run) -> None:
    """The code paths CUDA takes by default (bf16 autocast, channels_last), exercised on the CPU."""
    few = make_splits(load_raw("digits"), 180, 0, few_shot_fraction=0.1)
    job = StudentJob(arch="resnet8", teacher_arch="resnet8", optim=OptimConfig(epochs=1, batch_size=32, **COSINE),
                     runtime=RuntimeConfig(precision="bf16", channels_last=True),
                     distillers={"kd": KDConfig(), "mimkd": SMALL_MIMKD, "crd": CRDConfig(nce_k=64)})
    run = build_student_run(job, few, teacher=teacher_run.trainer.model)
    result = next(run.trainer.epochs())
    assert run.trainer.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.isfinite(torch.tensor(v)) for v in result.train_terms.values())
    assert 0.0 <= result.val_acc <= 1.0
    assert result.train_terms.keys() == {"ce", "kd", "mimkd_global", "mimkd_local", "crd"}


def test_a_final_run_without_validation_trains_on_all_of_train(teacher_run) -> None:
    """--val-size 0 (a confirmation run on train + validation): every image trains, validation is NaN, not 0."""
    full = make_splits(load_raw("digits"), val_size=0, seed=0)
    assert len(full.val) == 0 and len(full.train) == len(teacher_run.splits.train) + len(teacher_run.splits.val)
    job = StudentJob(arch="resnet8", teacher_arch="resnet8", optim=OptimConfig(epochs=1, batch_size=64, **COSINE))
    run = build_student_run(job, full, teacher=teacher_run.trainer.model)
    (result,) = list(run.trainer.epochs())
    assert run.trainer.train_loader.num_images == len(full.train)
    assert all(map(math.isnan, (result.val_acc, result.val_cmi, result.val_acc_max)))
    assert 0 <= run.test_metrics()["test_acc"] <= 1


def test_same_seed_same_initialisation_and_data_order_whatever_the_distiller(teacher_run) -> None:
    """Paired seeds: seed s gives the student the same initial weights and the same batches whatever it distils with."""
    def first_batch_and_weights(distillers: dict):
        job = StudentJob(arch="resnet8", teacher_arch="resnet8", distillers=distillers, runtime=RuntimeConfig(seed=5),
                         optim=OptimConfig(epochs=1, batch_size=32, **COSINE))
        run = build_student_run(job, teacher_run.splits, teacher=teacher_run.trainer.model)
        images, labels, *_ = next(iter(run.trainer.train_loader))
        return images, labels, run.trainer.model.state_dict()

    kd = first_batch_and_weights({"kd": KDConfig()})
    for others in ({"kd": KDConfig(), "mimkd": MIMKDConfig()}, {"crd": CRDConfig(nce_k=64)}, {}):
        other = first_batch_and_weights(others)
        assert torch.equal(kd[0], other[0]) and torch.equal(kd[1], other[1])
        assert all(torch.equal(kd[2][name], other[2][name]) for name in kd[2])


def test_crd_trains_on_few_shot_and_zero_shot_splits(teacher_run) -> None:
    """CRD's memory bank covers the student's own training set: a few-shot split without class 4 trains, the bank
    has one row per student image, and no negative can be an image the student never sees."""
    split = make_splits(load_raw("digits"), 180, 0, few_shot_fraction=0.15, zero_shot_classes=(4,))
    job = StudentJob(arch="resnet8", teacher_arch="resnet8", optim=OptimConfig(epochs=1, batch_size=32, **COSINE),
                     distillers={"crd": CRDConfig(nce_k=64)})
    run = build_student_run(job, split, teacher=teacher_run.trainer.model)
    result = next(run.trainer.epochs())
    crd = run.trainer.objective.distillers["crd"]
    assert crd.memory_student.shape == (len(split.student_train), 128) and math.isfinite(result.train_terms["crd"])
    negatives = crd.negatives(torch.tensor([0, 1, 2, 3]))
    assert (split.student_train.labels[negatives] != 4).all() and negatives.max() < len(split.student_train)
