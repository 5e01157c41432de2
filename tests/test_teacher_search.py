"""`search.teacher --objective NAME`: a teacher objective's settings searched by the student's validation accuracy,
with the same shape as `search.distiller --method`; and a teacher objective added by a test alone (its config, its
objective and its space registered here, no other file touched) searched and confirmed end to end."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import optuna
import pytest
import ray
import torch
import torch.nn.functional as F

from distill.objectives import Batch, Objective, Terms
from distill.teachers import TeacherContext, TeacherObjectiveConfig, register_teacher_objective
from search import teacher
from search.tracking import CONFIG_TAG, NOTE_TAG, OUTCOME_TAG, ROLE_TAG, SEARCH_TAG, TRIAL_ROLE
from spaces import Range
from spaces.method import MethodSpace, register_space
from tests.conftest import assert_one_line_error, run_in_process, run_module

SMALL = ["--preset", "digits", "--teacher-epochs", "2", "--epochs", "3", "--stage-epochs", "1", "--scheduler", "none"]


@dataclass(frozen=True)
class ConfidencePenaltyConfig(TeacherObjectiveConfig):
    """CE − β·H(p): the confidence penalty of Pereyra et al. (2017), a teacher regulariser in a few lines."""

    beta: float = field(default=0.1, metadata={"help": "weight of the prediction entropy bonus"})


class ConfidencePenalty(Objective):
    def __init__(self, model: torch.nn.Module, beta: float) -> None:
        super().__init__(model)
        self.beta = beta

    def forward(self, batch: Batch) -> tuple[torch.Tensor, Terms]:
        logits = self.model(batch.images)
        entropy = -(F.softmax(logits.float(), 1) * F.log_softmax(logits.float(), 1)).sum(1).mean()
        return logits, {"ce": F.cross_entropy(logits.float(), batch.labels), "neg_entropy": -self.beta * entropy}


@register_teacher_objective("confidence_penalty")
class ConfidencePenaltyTeacher:
    Config = ConfidencePenaltyConfig

    @staticmethod
    def build(config: ConfidencePenaltyConfig, context: TeacherContext) -> Objective:
        return ConfidencePenalty(context.model, config.beta)


register_space(MethodSpace("confidence_penalty", side="teacher", ranges={"beta": Range(0.0, 0.5)},
                           labels={"beta": "β"}))


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("results")


def trial_runs(storage: Path, experiment: str, name: str, role: str = TRIAL_ROLE) -> list:
    client = mlflow.MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    parent = client.search_runs([experiment_id], f"attributes.run_name = '{name}'")[0]
    return client.search_runs([experiment_id], f"tags.`{SEARCH_TAG}` = '{parent.info.run_id}' and "
                                               f"tags.`{ROLE_TAG}` = '{role}'")


def test_bad_teacher_searches_are_one_line_errors_before_anything_starts(tmp_path, capsys):
    cases = [
        (["--objective", "sharpen"], "invalid choice: 'sharpen' (choose from"),
        (["--objective", "label_smoothing", "--range", "temperature", "1", "2"],
         "--range temperature: label_smoothing's search has no range of that name; it ranges over eps"),
        (["--objective", "label_smoothing", "--range", "eps", "0", "1"],
         "label_smoothing.eps must be in [0, 1), got 1"),
        (["--objective", "label_smoothing", "--range", "eps", "-0.1", "0.2"],
         "--range eps -0.1 0.2: both ends must be >= 0"),
        (["--objective", "label_smoothing", "--stage-epochs", "0"], "--stage-epochs must be positive"),
        (["--objective", "mcmi", "--teacher-start", "nowhere"], "invalid choice: 'nowhere'"),
    ]
    for argv, fragment in cases:
        result = run_in_process(teacher.main, *argv, "--preset", "digits", "--storage-path", tmp_path / "r",
                                capsys=capsys)
        assert_one_line_error(result, fragment)
        assert result.returncode == 2
    assert "label_smoothing" in run_in_process(teacher.main, "--objective", "sharpen", capsys=capsys).stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_label_smoothing_search_names_its_runs_by_epsilon_and_confirms_against_both_baselines(storage):
    done = run_module("search.teacher", "--objective", "label_smoothing", *SMALL, "--num-samples", "3",
                      "--confirm-top", "1", "--confirm-seeds", "1", "--confirm-max-seeds", "1", "--storage-path", storage,
                      "--name", "ls",
                      timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((storage / "ls" / "summary.json").read_text())
    assert summary["search"] == "teacher_label_smoothing" and len(summary["trials"]) == 3
    assert {"label_smoothing.eps": 0.1} in [t["config"] for t in summary["trials"]]  # the objective's default
    configs = {c["key"]: c for c in summary["confirmation"]["configs"]}
    assert list(configs) == ["control", "mll_teacher", "top1"]
    assert configs["control"]["config"] == {"teacher_objective": "mll"}
    assert configs["mll_teacher"]["config"] == {"teacher_stage": False}
    verdicts = [c["verdict"] for c in summary["confirmation"]["comparisons"]]
    assert any("the CE control" in v for v in verdicts) and any("the MLL-teacher student" in v for v in verdicts)
    runs = trial_runs(storage, "kdtune-teacher_label_smoothing", "ls")
    assert len(runs) == 3 and all(r.info.run_name.startswith("ε=") for r in runs)
    assert all("teacher_train_loss_ce" in r.data.metrics and "teacher_val_acc" in r.data.metrics for r in runs)
    confirms = trial_runs(storage, "kdtune-teacher_label_smoothing", "ls", "confirm")
    assert sorted(r.data.tags[CONFIG_TAG] for r in confirms) == ["control", "mll_teacher", "top1"]
    client = mlflow.MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    parent = client.get_run(summary["mlflow"]["parent_run_id"])
    description = parent.data.tags[NOTE_TAG]  # the summary, rendered on the parent run's page
    assert "## Confirmation" in description and all(v in description for v in verdicts)
    assert "| teacher test NLL |" in description and "teacher KL to the true posterior" not in description  # digits
    view = summary["mlflow"]["confirmation_view"]
    assert "workflowType=machine_learning" in view and "the confirmation runs, grouped by configuration" in done.stdout
    study = optuna.load_study(study_name="ls", storage=f"sqlite:///{storage / 'optuna.db'}")
    assert study.user_attrs["teacher objective"] == "label_smoothing"
    for trial in study.trials:
        run_id = trial.user_attrs["mlflow_run_id"]
        assert trial.user_attrs["mlflow_run_url"] == (f"http://127.0.0.1:5000/#/experiments/{parent.info.experiment_id}"
                                                      f"/runs/{run_id}?workflowType=machine_learning")
        assert trial.user_attrs["outcome"] == client.get_run(run_id).data.tags[OUTCOME_TAG]  # one story in both UIs


@pytest.mark.slow
def test_a_teacher_objective_added_in_a_test_is_searched_and_confirmed(storage, capsys):
    """The objective, its config and its space above are the whole addition: 2 trials, 1 confirmation seed."""
    try:
        result = run_in_process(teacher.main, "--objective", "confidence_penalty", *SMALL, "--num-samples", "2",
                                "--confirm-top", "1", "--confirm-seeds", "1", "--confirm-max-seeds", "1",
                                "--storage-path", storage, "--name",
                                "toy", capsys=capsys)
    finally:
        ray.shutdown()  # the search ran in this process: leave no Ray behind for the tests after it
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((storage / "toy" / "summary.json").read_text())
    assert {"confidence_penalty.beta": 0.1} in [t["config"] for t in summary["trials"]]
    assert all(t["state"] == "complete" for t in summary["trials"])
    assert [c["key"] for c in summary["confirmation"]["configs"]] == ["control", "mll_teacher", "top1"]
    runs = trial_runs(storage, "kdtune-teacher_confidence_penalty", "toy")
    assert all("teacher_train_loss_neg_entropy" in r.data.metrics for r in runs), "the toy's own term, per epoch"
