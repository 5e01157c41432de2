"""The trainables' stages as plain generators of (metrics, checkpoint files), run without a Tune session:
what each epoch reports, that a trial continues from its own files exactly, and how divergence ends it."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from distill import models
from distill.config import OptimConfig, RuntimeConfig, StudentJob, TeacherJob, TeacherStage
from distill.teachers import MCMIConfig
from distill.data import load_raw, make_splits
from distill.errors import UserError
from distill.runs import build_teacher_run, evaluate_split
from trainables import common
from trainables.metrics import STUDENT_EPOCH, STUDENT_VAL_ACC, TEACHER_VAL_ACC
from trainables.student import student_trial
from trainables.teacher import teacher_trial
from trainables.teacher_student import teacher_student_trial

RECIPE = OptimConfig(epochs=2, batch_size=32, lr=0.05, schedule="cosine", milestones=())


@pytest.fixture(scope="module")
def splits():
    full = make_splits(load_raw("digits"), val_size=180, seed=0, few_shot_fraction=0.15)
    return replace(full, test=full.test.subset(torch.arange(0)))  # search trials never see the test set


@pytest.fixture(scope="module")
def teacher_weights(splits) -> bytes:
    torch.manual_seed(0)
    return models.weights_bytes(models.create("resnet8", splits.num_classes), arch="resnet8")


def jobs(seed: int = 3, start: str = "mll") -> tuple[TeacherStage, StudentJob]:
    runtime = RuntimeConfig(seed=seed, deterministic=True)
    teacher = TeacherJob(arch="resnet8", optim=replace(RECIPE, epochs=1), runtime=runtime, objective=MCMIConfig())
    return (TeacherStage(teacher, start),
            StudentJob(arch="resnet8", teacher_arch="resnet8", optim=RECIPE, runtime=runtime))


def test_a_teacher_stage_trial_reports_the_teacher_stage_then_each_student_epoch(splits, teacher_weights):
    reports = list(teacher_student_trial({"mcmi.lam": 0.3}, *jobs(), splits, teacher_weights, {}))
    assert [r[STUDENT_EPOCH] for r, _ in reports] == [0, 1, 2]
    waiting, *students = reports
    assert math.isnan(waiting[0][STUDENT_VAL_ACC]) and set(waiting[1]) == {common.STATE_FILE}
    for metrics, files in students:
        assert 0 <= metrics[STUDENT_VAL_ACC] <= 1 and TEACHER_VAL_ACC in metrics, "the teacher's numbers carried"
        assert set(files) == {common.STATE_FILE, common.STUDENT_FILE, common.TEACHER_FILE}
        assert not any(k.startswith("student_test") for k in metrics), "no test set, no test scores"


def test_a_trial_continues_from_its_own_checkpoint_files_exactly(splits, teacher_weights):
    straight = list(teacher_student_trial({"mcmi.lam": 0.3}, *jobs(), splits, teacher_weights, {}))
    after_first_student_epoch = straight[1][1]
    resumed = list(teacher_student_trial({"mcmi.lam": 0.3}, *jobs(), splits, teacher_weights,
                                         after_first_student_epoch))
    assert len(resumed) == 1 and resumed[0][0][STUDENT_EPOCH] == 2
    assert resumed[0][0][STUDENT_VAL_ACC] == straight[2][0][STUDENT_VAL_ACC]
    assert resumed[0][0]["student_train_loss"] == straight[2][0]["student_train_loss"]


def test_a_student_trial_takes_its_distillers_from_the_config(splits, teacher_weights):
    _, job = jobs()
    reports = list(student_trial({"distillers": "dkd+at", "dkd.beta": 2.0, "at.weight": 10.0}, job, splits,
                                 teacher_weights, {}))
    assert len(reports) == 2
    assert {"student_train_loss_dkd_tckd", "student_train_loss_dkd_nckd", "student_train_loss_at",
            "student_train_loss_ce"} <= reports[-1][0].keys()
    assert "student_train_loss_kd" not in reports[-1][0]


def test_a_teacher_stage_trial_distils_with_the_students_distillers(splits, teacher_weights):
    """The best λ for a CRD student: the trial's student stage uses the job's distillers (CRD's memory bank
    keyed by the loader's indices), not KD."""
    stage, student = jobs()
    student = replace(student, distillers={}, optim=replace(RECIPE, epochs=1))
    reports = list(teacher_student_trial({"mcmi.lam": 0.3, "distillers": "crd", "crd.nce_k": 32}, stage, student,
                                         splits, teacher_weights, {}))
    final = reports[-1][0]
    assert "student_train_loss_crd" in final and "student_train_loss_kd" not in final
    assert final["student_train_loss_ce"] > 0, "CE weight 1 with CRD alone"


def test_a_diverging_teacher_ends_the_trial_with_its_reason(splits, teacher_weights):
    """λ 1e300 is finite (no option refuses it) but overflows float32: the teacher's loss is not finite."""
    reports = list(teacher_student_trial({"mcmi.lam": 1e300}, *jobs(), splits, teacher_weights, {}))
    (metrics, files), = reports
    assert metrics[common.DIVERGED_KEY] == 1 and metrics[STUDENT_VAL_ACC] == 0.0 and files == {}
    assert metrics["failure_reason"].startswith("teacher diverged: loss is not finite")


def test_a_teacher_trials_checkpoint_holds_the_trained_weights_that_scored_its_accuracy(splits):
    """The cached teacher is the one that was trained and scored: its checkpoint's weights equal those of the same
    deterministic run trained again (not its starting weights), and re-scoring them gives the reported accuracy."""
    job = TeacherJob(arch="resnet8", optim=replace(RECIPE, epochs=1), runtime=RuntimeConfig(seed=1, deterministic=True))
    (metrics, files), = list(teacher_trial({}, job, splits, {}))
    saved = common.load_net(files[common.TEACHER_FILE], "resnet8", splits.num_classes)
    assert evaluate_split(saved, splits, job.runtime, "val")["val_acc"] == metrics[TEACHER_VAL_ACC]
    again = build_teacher_run(job, splits)
    untrained = {k: v.clone() for k, v in again.trainer.model.state_dict().items()}
    list(again.trainer.epochs())
    trained = again.trainer.model.state_dict()
    for name, value in saved.state_dict().items():
        assert torch.equal(value, trained[name]), name
    assert not torch.equal(saved.state_dict()["conv1.weight"], untrained["conv1.weight"]), "trained, not initial"


def parameters_of(payload: bytes, num_classes: int) -> dict[str, torch.Tensor]:
    return dict(common.load_net(payload, "resnet8", num_classes).named_parameters())


def test_a_trial_switches_its_teacher_objective_or_skips_the_stage_by_its_config(splits, teacher_weights):
    """The baselines' configs: `teacher_objective: mll` trains the same stage with plain CE (no CMI term), and
    `teacher_stage: False` distils from the MLL teacher itself; a from-scratch stage does not start from it."""
    control = list(teacher_student_trial({"teacher_objective": "mll"}, *jobs(), splits, teacher_weights, {}))
    assert "teacher_train_loss_cmi" not in control[0][0] and "teacher_train_loss_ce" in control[0][0]
    skipped = list(teacher_student_trial({"teacher_stage": False}, *jobs(), splits, teacher_weights, {}))
    assert [r[STUDENT_EPOCH] for r, _ in skipped] == [1, 2]
    assert skipped[-1][1][common.TEACHER_FILE] == teacher_weights


@pytest.mark.parametrize("start", ["mll", "scratch"])
def test_a_teacher_stage_starts_from_the_mll_teacher_or_from_scratch(splits, teacher_weights, start):
    """With a learning rate of 1e-9 the stage's trained teacher keeps its starting parameters: the MLL teacher's
    when it fine-tunes, a fresh net's (far from them) when it starts from scratch."""
    stage, student = jobs(start=start)
    stage = replace(stage, job=replace(stage.job, optim=replace(stage.job.optim, lr=1e-9)))
    reports = list(teacher_student_trial({"mcmi.lam": 0.3}, stage, replace(student, optim=replace(RECIPE, epochs=1)),
                                         splits, teacher_weights, {}))
    mll = parameters_of(teacher_weights, splits.num_classes)
    trained = parameters_of(reports[-1][1][common.TEACHER_FILE], splits.num_classes)
    distance = max((trained[k] - mll[k]).abs().max().item() for k in mll)
    assert distance < 1e-6 if start == "mll" else distance > 0.1


def test_a_trial_refuses_a_setting_of_another_objective(splits, teacher_weights):
    with pytest.raises(UserError, match="label_smoothing.eps set the label_smoothing objective, but the teacher "
                                        "trains with mcmi"):
        next(teacher_student_trial({"label_smoothing.eps": 0.1}, *jobs(), splits, teacher_weights, {}))
