"""The search entry points: bad input fails before anything starts; end to end on digits with a real
local Ray cluster, Optuna RDB storage, ASHA and an MLflow SQLite store; killed and resumed."""
from __future__ import annotations

import glob
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import mlflow
import optuna
import pyarrow.parquet as pq
import pytest
import torch

from distill import models
from search import distiller, kd_temperature, mcmi_lambda, mimkd
from search.mlflow_ui import view_state
from search.outcomes import OUTCOMES
from search.state import STATE_FILE
from search.tracking import (
    CONFIG_TAG,
    EXPERIMENT_KIND_TAG,
    OUTCOME_TAG,
    ROLE_TAG,
    SEARCH_TAG,
    SEED_TAG,
    TRAINING_KIND,
    TRIAL_ROLE,
    TRIAL_TAG,
)
from tests.conftest import REPO, assert_one_line_error, run_in_process, run_module

STUDENT_SMALL = ["--preset", "digits", "--teacher-epochs", "2", "--epochs", "4", "--grace-period", "1"]
SMALL = [*STUDENT_SMALL, "--mcmi-epochs", "1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def damaged_tree(root: Path) -> Path:
    """A small ImageFolder tree with one empty "JPEG" among its training files."""
    from tests.test_imagefolder import write_tree

    tree = write_tree(root / "damaged", train=2, val=1)
    (tree / "train" / "ant" / "0.JPEG").write_bytes(b"")
    return tree


def bad_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    """One bad value of each class of option: a name, a range, a count, a resource, a path, a URI, a file."""
    wrong_arch = tmp_path / "resnet8.pth"
    models.save_weights(models.create("resnet8", 10), wrong_arch)
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "teacher.csv").write_text("epoch,acc\n1,0.5\n")
    cases = [
        (["--storage-path", str(tmp_path / "a-file")], "--storage-path"),
        (["--storage-path", str(tmp_path / "a-file" / "results")], "cannot be created"),
        (["--tracking-uri", "ftp://host/mlflow"], "MLflow has no tracking store for ftp://"),
        (["--cpus-per-trial", "999"], "more than this machine's"),
        (["--experiment-name", ""], "not a usable MLflow experiment name"),
        (["--experiment-name", "team/kd"], "not a usable MLflow experiment name"),
        (["--teacher-checkpoint", str(tmp_path / "teacher.csv")], "is not a PyTorch checkpoint"),
        (["--teacher", "resnet999"], "unknown model 'resnet999'"),
        (["--student", "nope"], "unknown model 'nope'"),
        (["--lam-range", "0.5", "0.1"], "--lam-range 0.5 0.1 is empty"),
        (["--lam-range", "-1", "1"], "positive"),
        (["--lr-range", "0", "0.1"], "--lr-range"),
        (["--num-samples", "0"], "--num-samples must be positive"),
        (["--grace-period", "9", "--max-t", "4"], "--grace-period 9 exceeds --max-t 4"),
        (["--max-t", "99"], "--max-t 99 exceeds the student's 15 epochs"),
        (["--tracking-uri", f"http://127.0.0.1:{free_port()}"], "cannot reach the MLflow tracking server"),
        (["--address", f"127.0.0.1:{free_port()}"], "no Ray cluster answers at 127.0.0.1:"),
        (["--teacher-checkpoint", str(tmp_path / "missing.pth")], "teacher checkpoint not found"),
        (["--teacher-checkpoint", str(wrong_arch)], "does not fit resnet14"),
        (["--dataset", "cifar100", "--data-dir", str(tmp_path)], "cifar"),
        (["--resume"], "nothing to resume"),
        (["--confirm-seeds", "-1"], "--confirm-seeds must not be negative"),
        (["--confirm-top", "0"], "--confirm-top must be positive when --confirm-seeds is above 0"),
        (["--confirm-only"], "nothing to resume"),
        (["--confirm-seeds", "3", "--confirm-max-seeds", "2"], "--confirm-max-seeds 2 is below --confirm-seeds 3"),
        (["--confirm-max-seeds", "1000"], "--confirm-max-seeds 1000 is more than 100 seeds per configuration"),
        (["--margin", "-1"], "--margin is in accuracy points, above 0 and below 100, got -1"),
        (["--margin", "0"], "--margin is in accuracy points, above 0 and below 100, got 0"),
        (["--margin", "nan"], "--margin nan: not a finite number"),  # every float option's one check
        (["--margin", "inf"], "--margin inf: not a finite number"),
        (["--margin", "250"], "got 250"),
        (["--distiller", "kdd"], "unknown distiller 'kdd'; choose one of: kd, dkd, crd, fitnet, at, mimkd"),
        (["--distiller", "kd", "--dkd-beta", "2"], "--dkd-beta set dkd, which is not among --distiller kd"),
        (["--distiller", "kd", "kd"], "name each distiller once"),
        (["--distiller", "crd", "--crd-nce-t", "0"], "crd.nce_t must be positive"),
        (["--pretrained-teacher"], "--pretrained-teacher takes one of torchvision's nets (tv_resnet18/34/50), not "
                                   "resnet14"),
        (["--pretrained-teacher", "--teacher-checkpoint", str(wrong_arch)], "both choose the teacher: give one"),
        (["--workers-per-trial", "0"], "--workers-per-trial must be positive"),
        (["--workers-per-trial", "2", "--gpus-per-trial", "0.5"], "each worker takes one whole GPU"),
        (["--workers-per-trial", "1", "--gpus-per-trial", "2"], "--gpus-per-trial 2 needs 2 workers"),
        (["--workers-per-trial", "3"], "the batch size 32 does not split evenly over the workers"),
        (["--workers-per-trial", "2", "--distiller", "crd"], "crd cannot train on several data-parallel workers"),
        (["--workers-per-trial", "2", "--compile"], "has not been validated under DDP yet"),
        (["--dataset", "imagefolder:size=32", "--data-dir", str(damaged_tree(tmp_path))],
         "are not images the decoder reads"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--gpus-per-trial", "0.25"], "this machine has none"))
        cases.append((["--gpus-per-trial", "8"], "this machine has none"))
    return cases


def test_bad_input_is_one_line_before_anything_starts(tmp_path, capsys):
    storage = tmp_path / "results"
    for argv, fragment in bad_inputs(tmp_path):
        code = mcmi_lambda.main(["--preset", "digits", "--storage-path", str(storage), *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], (argv, err)
        assert not storage.exists(), argv  # nothing written: no MLflow store, no Ray folder, no study
    assert (tmp_path / "a-file").read_text() == "not a folder"


def test_other_searches_check_their_ranges(tmp_path, capsys):
    for main, argv, fragment in [
        (kd_temperature.main, ["--alpha-range", "0.5", "1.5"], "HIGH must not exceed 1"),
        (kd_temperature.main, ["--temperature-range", "4", "2"], "is empty"),
        (mimkd.main, ["--beta-range", "0", "1"], "--beta-range"),
        (mimkd.main, ["--distiller", "kd"], "--distiller kd leaves out mimkd, whose settings this search samples"),
        (distiller.main, [], "the following arguments are required: --method"),
        (distiller.main, ["--method", "dkd", "--range", "gamma", "1", "2"], "dkd's search has no range of that name"),
        (distiller.main, ["--method", "fitnet", "--range", "weight", "0", "2"], "both ends must be positive"),
    ]:
        assert main(["--preset", "digits", "--storage-path", str(tmp_path), *argv]) == 2
        assert fragment in capsys.readouterr().err


def test_environment_gives_storage_tracking_and_cluster_defaults(monkeypatch, tmp_path):
    """On a cluster node the environment (cluster.yaml's setup; RAY_ADDRESS in a Ray job) points a search at
    shared storage, the MLflow server and the cluster; options given on the command line still win."""
    from search import spec

    monkeypatch.setenv("KDTUNE_STORAGE_PATH", str(tmp_path / "shared"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.2:6379")
    args = spec.parse(kd_temperature.DEFINITION, ["--preset", "digits"])
    assert (args.storage_path, args.tracking_uri, args.address) == (
        str(tmp_path / "shared"), "http://127.0.0.1:5000", "127.0.0.2:6379")
    args = spec.parse(kd_temperature.DEFINITION, ["--storage-path", "here", "--tracking-uri", "sqlite:////x.db",
                                                    "--address", "auto"])
    assert (args.storage_path, args.tracking_uri, args.address) == ("here", "sqlite:////x.db", "auto")
    for name in ("KDTUNE_STORAGE_PATH", "MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        monkeypatch.setenv(name, "")  # set but empty: as if unset
    args = spec.parse(kd_temperature.DEFINITION, [])
    assert (args.storage_path, args.tracking_uri, args.address) == ("./results", None, None)


def test_cli_help_and_error_as_a_user_sees_them(capsys):
    for main in (mcmi_lambda.main, mimkd.main, kd_temperature.main, distiller.main):
        with pytest.raises(SystemExit) as done:
            main(["--help"])
        shown = capsys.readouterr().out
        assert done.value.code == 0
        for option in ("--num-samples", "--max-concurrent-trials", "--gpus-per-trial", "--storage-path",
                       "--tracking-uri", "--experiment-name", "--address", "--resume", "--preset", "--distiller",
                       "--dkd-beta", "--crd-nce-k"):
            assert option in shown
    assert_one_line_error(run_module("search.mcmi_lambda", "--preset", "digits", "--lam-range", "1", "0.1"), "empty")


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("results")


CONFIRMED = ("control", "mll_teacher", "top1", "top2")  # the lambda search's baselines, then its best two


@pytest.fixture(scope="module")
def lambda_search(storage):
    """A complete small lambda search (the MLL teacher is trained first and cached in `storage`), then its
    confirmation: the top 2 configurations and both baselines, 2 paired seeds each, no race (the resume test below
    races)."""
    done = run_module("search.mcmi_lambda", *SMALL, "--num-samples", "6", "--reduction-factor", "3",
                      "--confirm-top", "2", "--confirm-seeds", "2", "--confirm-max-seeds", "2", "--storage-path",
                      storage, "--name", "lam",
                      timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads((storage / "lam" / "summary.json").read_text())


def child_runs(storage: Path, experiment: str, parent_name: str, role: str = TRIAL_ROLE):
    """The MLflow client, the search's parent run and its child runs of one role."""
    client = mlflow.MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    parent = client.search_runs([experiment_id], f"attributes.run_name = '{parent_name}'")[0]
    children = client.search_runs([experiment_id], f"tags.`{SEARCH_TAG}` = '{parent.info.run_id}' and "
                                                   f"tags.`{ROLE_TAG}` = '{role}'")
    return client, parent, children


@pytest.mark.slow
def test_lambda_search_ends_with_table_best_config_confirmation_and_summary(lambda_search, storage):
    done, summary = lambda_search
    assert "MLL teacher: no cached resnet14" in done.stdout and "training it first" in done.stdout
    assert "best trial" in done.stdout and "test (once, best trial)" not in done.stdout  # the confirmation tests
    states = [trial["state"] for trial in summary["trials"]]
    assert len(states) == 6 and "complete" in states
    assert "stopped early" in states, states  # ASHA judged the student stage and stopped some
    finished = [trial for trial in summary["trials"] if trial["state"] == "complete"]
    best_value = max(trial["metrics"]["student_val_acc"] for trial in finished)
    assert summary["best"]["state"] == "complete" and summary["best"]["metrics"]["student_val_acc"] == best_value
    confirmation = summary["confirmation"]
    configs = {c["key"]: c for c in confirmation["configs"]}
    assert list(configs) == list(CONFIRMED) and confirmation["seeds"] == [1, 2]
    assert confirmation["runs"] == 8 and confirmation["max_seeds"] == 2 and "confirmation confirm-2:" not in done.stdout
    assert {c["decision"] for c in configs.values()} <= {"better", "worse", "equivalent", "inconclusive"}
    assert "Seeds: 2 paired seeds each (λ=0 control 2, MLL-teacher student 2, " in done.stdout
    for config in configs.values():
        assert sorted(config["seeds"]) == ["1", "2"] and all(0 <= v <= 1 for v in config["seeds"].values())
        assert 0 <= config["estimates"]["test_acc"]["mean"] <= 1 and "teacher_test_acc" in config["estimates"]
    assert configs["top1"]["search_val"] == summary["best"]["metrics"]["student_val_acc"]
    assert configs["control"]["config"] == {"mcmi.lam": 0.0}
    assert configs["mll_teacher"]["config"] == {"teacher_stage": False}
    text = (storage / "lam" / "summary.md").read_text()
    assert text.startswith("# mcmi_lambda: lam") and "## Confirmation" in text
    verdicts = [c["verdict"] for c in summary["confirmation"]["comparisons"]]
    assert len(verdicts) == 4 and all(f"- {v}" in text and f"{v}" in done.stdout for v in verdicts)
    assert all(c["word"] in c["verdict"] for c in summary["confirmation"]["comparisons"])
    assert "Verdicts (margin δ = ±1 point)" in text and summary["confirmation"]["margin"] == 0.01
    assert all("the λ=0 control" in v or "the MLL-teacher student" in v for v in verdicts)
    assert list((storage / "teachers").glob("digits-resnet14-*/weights.pth"))
    assert list((storage / "mlartifacts").rglob("summary.md")) and not (REPO / "mlruns").exists()


RAY_MARKS = ("Trial status:", "Checkpoint successfully created", "Wrote the latest version", "╭", "│",
             "View detailed results here", "Started a local Ray instance")


@pytest.mark.slow
def test_the_terminal_shows_progress_lines_and_ends_on_the_summary_while_ray_talks_into_the_log(lambda_search,
                                                                                                   storage):
    """Off a terminal (the fixture's pipe): before the summary, at most 30 lines plus two per trial and per
    confirmation run (an event line each, and room for a once-a-minute line while none ends: 58 here, where Ray's
    tables made it about 400); none of Ray's tables or workers' lines, which the search's log holds; no
    carriage-return redraws; and the terminal ends on the summary and the MLflow links."""
    done, summary = lambda_search
    lines = done.stdout.splitlines()
    assert lines[0] == f"log: {storage / 'lam' / 'search.log'} holds Ray's tables and the workers' lines (--verbose " \
                       "shows them here)"
    table = next(i for i, line in enumerate(lines) if line.startswith("trial ") and "outcome" in line)
    runs = summary["confirmation"]["runs"]
    assert table <= 30 + 2 * (len(summary["trials"]) + runs), "\n".join(lines[:table])
    assert sum("(trial " in line for line in lines if line.startswith("search: ")) == len(summary["trials"])
    assert sum(line.startswith("confirmation confirm-1: ") and line.endswith("%)") for line in lines) == runs
    assert not any(mark in done.stdout + done.stderr for mark in RAY_MARKS) and "\r" not in done.stdout
    log = (storage / "lam" / "search.log").read_text()
    assert all(mark in log for mark in RAY_MARKS[:3]) and "summary: " in log
    after = lines[table:]  # the summary: trials, best and ties, confirmation and verdicts, where it is, the links
    assert [line for line in after if line.startswith(("best trial ", "Ties: ", "confirmation", "Verdicts "))] == [
        after[after.index("confirmation") - 3], after[after.index("confirmation") - 2], "confirmation",
        next(line for line in after if line.startswith("Verdicts "))]
    at = after.index(f"summary: {storage / 'lam' / 'summary.md'}")
    assert after[at + 1].startswith("in MLflow (serve them with: mlflow ui ")
    links = after[at + 2:]
    assert all(what.startswith("  ") and what.endswith(":") for what in links[::2]) and len(links) % 2 == 0
    assert all(url.startswith("    http://127.0.0.1:5000/#/") for url in links[1::2])
    assert links[-2] == "  the confirmation runs, grouped by configuration, by student_test_acc:"


@pytest.mark.slow
def test_mlflow_holds_the_parent_and_one_child_per_trial(lambda_search, storage):
    client, parent, children = child_runs(storage, "kdtune-mcmi_lambda", "lam")
    assert parent.info.status == "FINISHED" and parent.data.tags[ROLE_TAG] == "search"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.md", "summary.json", "mcmi_lambda.png", "confirmation.png", "best_trial",
            "reliability.png", "eigencam.png", "reliability_confirmed.png", "eigencam_confirmed.png"} <= artifacts
    kept = sorted(path.stem for path in (storage / "lam" / "confirm-teachers").glob("*.pth"))
    assert kept == ["control", "top1", "top2"]  # each confirmed configuration's own teacher, first seed; not the MLL
    assert len(children) == 6 and len({run.data.tags[TRIAL_TAG] for run in children}) == 6
    for run in children:
        assert float(run.data.params["mcmi.lam"]) > 0
        assert {"student_val_acc", "teacher_val_acc", "teacher_val_cmi", "student_train_loss_kd"} <= set(run.data.metrics)
        assert {f"{stage}_val_{score}" for stage in ("teacher", "student")
                for score in ("nll", "ece", "brier", "entropy")} <= set(run.data.metrics)
        assert not any("_test_" in name for name in run.data.metrics)  # search trials never see the test set
        assert {"curves.png", "student.pth"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
        history = sorted(client.get_metric_history(run.info.run_id, "student_val_acc"), key=lambda m: m.step)
        assert history[0].step == 0 and math.isnan(history[0].value)  # logged first: "no student yet"
        assert [m.step for m in history[1:]] == list(range(1, len(history)))  # then one value per student epoch
    experiment_id = client.get_experiment_by_name("kdtune-mcmi_lambda").experiment_id
    teachers = client.search_runs([experiment_id], f"tags.`{ROLE_TAG}` = 'teacher'")
    assert len(teachers) == 1 and teachers[0].info.run_name.startswith("MLL teacher resnet14")


@pytest.mark.slow
def test_mlflow_ui_opens_on_the_trials_named_by_lambda_with_outcomes_and_links(lambda_search, storage):
    """What the MLflow UI shows first: a model-training experiment, trial runs named by λ with their outcome,
    one objective name, loss terms named as terms, settings as params, and the links the search printed."""
    done, summary = lambda_search
    client, parent, children = child_runs(storage, "kdtune-mcmi_lambda", "lam")
    experiment = client.get_experiment_by_name("kdtune-mcmi_lambda")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    outcome_of = {t["trial"]: t["outcome"] for t in summary["trials"]}
    for run in children:
        trial = run.data.tags[TRIAL_TAG]
        assert run.info.run_name == f"λ={float(run.data.params['mcmi.lam']):.4g} · {trial}"
        assert run.data.tags[OUTCOME_TAG] == outcome_of[trial] and outcome_of[trial] in OUTCOMES
        assert next(iter(run.data.metrics)) == "student_val_acc"  # first metric: the compare view's default
        assert {"student_epochs", "teacher_epochs"} <= set(run.data.params)
        assert not any(name.endswith("_epochs") for name in run.data.metrics)
        assert not {"student_best_val_acc", "teacher_train_cmi"} & set(run.data.metrics)
        assert run.data.metrics["teacher_train_loss_neg_cmi"] < 0 < run.data.metrics["teacher_val_cmi"]
    params = parent.data.params
    assert params["storage_path"] == str(storage.resolve()) and Path(params["data_dir"]).is_absolute()
    assert params["experiment_name"] == "kdtune-mcmi_lambda" and params["tracking_uri"].startswith("sqlite:////")
    assert (params["name"], params["max_t"], params["val_size"]) == ("lam", "4", "180")
    best = summary["best"]["metrics"]["student_val_acc"]
    assert parent.data.metrics["student_val_acc"] == pytest.approx(best, rel=1e-5)  # logged to 6 digits
    teacher = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'teacher'")[0]
    assert teacher.info.run_name == "MLL teacher resnet14"
    # the plain experiment page, expanded, shows the search's stages and its teacher, each stage holding its runs
    nested = {run.info.run_name: run for run in client.search_runs(
        [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")}
    assert set(nested) == {"search trials", "confirmation", "MLL teacher resnet14"}
    assert all(run.info.status == "FINISHED" for run in nested.values())
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {nested["search trials"].info.run_id}
    confirms = child_runs(storage, "kdtune-mcmi_lambda", "lam", "confirm")[2]
    assert {run.data.tags["mlflow.parentRunId"] for run in confirms} == {nested["confirmation"].info.run_id}
    assert teacher.data.params["arch"] == "resnet14" and teacher.data.params["recipe.epochs"] == "2"
    view = view_state(client, experiment.experiment_id, parent.info.run_id)
    assert len(client.search_runs([experiment.experiment_id], view["searchFilter"])) == 6
    assert "params.`mcmi.lam`" in view["selectedColumns"] and f"tags.`{OUTCOME_TAG}`" in view["selectedColumns"]
    links = summary["mlflow"]
    assert links["trials_view"].endswith(f"viewStateShareKey={parent.info.run_id}")
    compared = json.loads(urllib.parse.parse_qs(links["compare"].split("?", 1)[1])["runs"][0])
    ran_all = [run.info.run_id for run in children if run.data.metrics["student_epoch"] == 4]
    assert sorted(compared) == sorted(ran_all)  # a stopped trial's value is an earlier epoch's: not compared
    text = (storage / "lam" / "summary.md").read_text()
    assert "## In MLflow" in text and links["compare"] in text and links["trials_view"] in text
    assert links["trials_view"] in done.stdout and links["compare"] in done.stdout
    assert "mlflow ui --backend-store-uri sqlite:////" in done.stdout


@pytest.mark.slow
def test_confirmation_runs_are_tagged_child_runs_one_per_configuration_and_seed(lambda_search, storage):
    client, parent, confirms = child_runs(storage, "kdtune-mcmi_lambda", "lam", "confirm")
    pairs = sorted((run.data.tags[CONFIG_TAG], run.data.tags[SEED_TAG]) for run in confirms)
    batches = json.loads((storage / "lam" / STATE_FILE).read_text())["confirm"]["batches"]
    assert pairs == sorted((key, str(seed)) for batch in batches for key, seed in batch["runs"])  # each run once
    assert {(key, seed) for key in CONFIRMED for seed in ("1", "2")} <= set(pairs)  # the first round: everyone
    for run in confirms:
        assert run.info.status == "FINISHED" and run.info.run_name.startswith("confirm ")
        assert run.info.run_name.endswith(f"· seed {run.data.tags[SEED_TAG]}")
        assert {"student_test_acc", "teacher_test_acc", "teacher_test_cmi"} <= set(run.data.metrics)
        assert "student_val_acc" not in run.data.metrics  # trained on train + validation: nothing to validate on
    metrics, tags = parent.data.metrics, parent.data.tags
    for key in CONFIRMED:
        assert {f"confirm_{key}_test_acc_{stat}" for stat in ("mean", "sd", "ci_low", "ci_high")} <= set(metrics)
    assert "λ=0 control" in tags["confirm_top1_vs_control_verdict"]


@pytest.mark.slow
def test_optuna_study_holds_the_search_trials_with_real_student_epochs(lambda_search, storage):
    """No placeholder for the teacher stage, no confirmation run: each intermediate value is a student epoch's
    validation accuracy at that epoch, exactly as the trial's MLflow run logged it."""
    study = optuna.load_study(study_name="lam", storage=f"sqlite:///{storage / 'optuna.db'}")
    assert len(study.trials) == 6 and study.trials[0].params == {"mcmi.lam": 0.25}
    assert study.metric_names == ["student_val_acc"]  # the objective has a name in optuna-dashboard
    client, _, children = child_runs(storage, "kdtune-mcmi_lambda", "lam")
    runs = {run.data.tags[TRIAL_TAG]: run for run in children}
    states = {t["trial"]: t["state"] for t in lambda_search[1]["trials"]}
    for trial in study.trials:
        run = runs[trial.user_attrs["ray_trial_id"]]  # each study trial links to its Ray trial and MLflow run
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "student_val_acc")
                   if m.step > 0}  # step 0: MLflow's "no student yet", never an Optuna value
        assert trial.intermediate_values == pytest.approx(history, rel=1e-5)  # MLflow keeps 6 significant digits
        assert 0.0 not in trial.intermediate_values.values()
        last = max(trial.intermediate_values)
        if states[run.data.tags[TRIAL_TAG]] == "complete":
            assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == trial.intermediate_values[last]
        else:  # ASHA stopped it: pruned, which TPE ranks below every trial that ran all epochs
            assert trial.state == optuna.trial.TrialState.PRUNED and trial.value is None
            assert trial.user_attrs["asha"] == f"stopped after student epoch {last} of 4"


@pytest.mark.slow
def test_diverging_trials_end_with_their_reason_and_the_search_goes_on(lambda_search, storage):
    """After the recipe's lr 0.05, seed 0 samples fine-tune learning rates of about 5266 and 229: far too large.
    The MLL teacher is brought as a RepDistiller-format checkpoint (the one the first search cached)."""
    brought = next((storage / "teachers").glob("digits-resnet14-*/weights.pth"))
    done = run_module("search.mcmi_lambda", *SMALL, "--num-samples", "3", "--epochs", "2", "--lam-range", "0.1", "0.5",
                      "--lr-range", "0.01", "1e6", "--teacher-checkpoint", brought, "--storage-path", storage,
                      "--name", "diverge", "--confirm-seeds", "0", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((storage / "diverge" / "summary.json").read_text())
    assert summary["teacher"]["source"] == f"checkpoint {brought}"
    assert "test (once, best trial): test_acc" in done.stdout and 0 <= summary["test"]["test_acc"] <= 1  # no confirmation
    states = {t["config"]["teacher_lr"]: t for t in summary["trials"]}
    assert states[0.05]["state"] == "complete"
    diverged = [t for t in summary["trials"] if t["state"] == "diverged"]
    assert diverged and all("teacher diverged: loss is not finite" in t["reason"] for t in diverged)
    _, _, children = child_runs(storage, "kdtune-mcmi_lambda", "diverge")
    failed = [run for run in children if run.info.status == "FAILED"]
    assert len(failed) == len(diverged) and all("not finite" in run.data.tags["failure_reason"] for run in failed)


def kill_when(storage: Path, options: list[str], results: str, past_teacher: int,
              sig: signal.Signals = signal.SIGKILL) -> tuple[int, str]:
    """Start (or, with --resume in `options`, continue) a small lambda search and interrupt it once `past_teacher`
    trials matching `results` have reported at least 3 results: SIGKILL to the driver and its local Ray, or
    SIGINT to the driver alone (Ctrl-C). Returns the driver's exit status and output."""
    small = [] if "--resume" in options else SMALL
    argv = [sys.executable, "-m", "search.mcmi_lambda", *small, *options, "--storage-path", str(storage)]
    log_path = storage / f"{options[-1]}-{sig.name}.log"
    with log_path.open("w") as log:
        driver = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO,
                                  env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and driver.poll() is None:
            reported = [Path(f).read_text().splitlines() for f in glob.glob(str(storage / results))]
            if sum(len(lines) >= 3 for lines in reported) >= past_teacher:
                break
            time.sleep(0.5)
        assert driver.poll() is None, "the search ended before it could be interrupted"
        if sig == signal.SIGKILL:
            os.killpg(driver.pid, signal.SIGKILL)
        else:
            driver.send_signal(sig)
        code = driver.wait(timeout=300)
    return code, log_path.read_text()


@pytest.mark.slow
def test_interrupted_search_resumes_without_duplicate_runs_in_its_trials_and_in_its_confirmation(
        lambda_search, storage, capsys):
    """Ctrl-C (SIGINT) to the driver once two trials are in their student stage: Tune stops, the parent run is
    KILLED (not left RUNNING) and the search prints one resume command (not Ray's Tuner.restore hint beside it).
    --resume continues the same search from the trials' checkpoints (fine-tuned teacher included); SIGKILL to
    the resumed driver and its Ray once the confirmation's second round reports (one seed measures no noise, so
    the race adds a second paired seed to every configuration); a second --resume finishes that round and the
    race, with every trial and every confirmation run once."""
    options = ["--num-samples", "3", "--confirm-top", "1", "--confirm-seeds", "1", "--confirm-max-seeds", "2",
               "--name", "resume"]
    code, out = kill_when(storage, options, "resume/*/result.json", 2, signal.SIGINT)
    assert code == 130, out[-3000:]
    assert out.count("continue with:") == 1 and "Tuner.restore(" not in out
    assert f"--resume --storage-path {storage} --name resume" in out
    _, parent, stopped = child_runs(storage, "kdtune-mcmi_lambda", "resume")
    assert parent.info.status == "KILLED" and not (storage / "resume" / "summary.json").exists()
    assert stopped and all(run.info.status in ("KILLED", "FINISHED") for run in stopped)  # none left RUNNING
    assert any(run.info.status == "KILLED" for run in stopped)
    assert json.loads((storage / "resume" / STATE_FILE).read_text())["search"] == "mcmi_lambda"
    assert_one_line_error(run_in_process(mcmi_lambda.main, "--confirm-only", "--storage-path", storage, "--name",
                                         "resume", capsys=capsys), "its search trials have not finished")
    kill_when(storage, ["--resume", "--name", "resume"], "resume/confirm-2/*/result.json", 1)
    state = json.loads((storage / "resume" / STATE_FILE).read_text())
    assert state["stage"] == "confirm" and state["confirm"]["batches"][0]["done"]
    assert not state["confirm"]["batches"][1].get("done") and state["confirm"]["seeds"] == [1, 2]
    resumed = run_module("search.mcmi_lambda", "--resume", "--storage-path", storage, "--name", "resume",
                         timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout  # the search stage is not redone: no progress line of its trials
    assert not any(line.startswith("search: ") for line in resumed.stdout.splitlines())
    summary = json.loads((storage / "resume" / "summary.json").read_text())
    assert len(summary["trials"]) == 3 and all(t["state"] in ("complete", "stopped early") for t in summary["trials"])
    assert all(sorted(c["seeds"]) == ["1", "2"] for c in summary["confirmation"]["configs"])
    _, parent, children = child_runs(storage, "kdtune-mcmi_lambda", "resume")
    assert parent.info.status == "FINISHED"
    assert len(children) == 3 and len({run.data.tags[TRIAL_TAG] for run in children}) == 3
    assert all(run.info.status == "FINISHED" for run in children)
    _, _, confirms = child_runs(storage, "kdtune-mcmi_lambda", "resume", "confirm")
    pairs = sorted((run.data.tags[CONFIG_TAG], run.data.tags[SEED_TAG]) for run in confirms)
    assert pairs == sorted((key, seed) for key in ("control", "mll_teacher", "top1") for seed in ("1", "2"))
    assert all(run.info.status == "FINISHED" for run in confirms)
    study = optuna.load_study(study_name="resume", storage=f"sqlite:///{storage / 'optuna.db'}")
    ran = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(ran) == 3 and ran[0].params == {"mcmi.lam": 0.25}
    table = pq.read_table(storage / "resume" / "trials.parquet").to_pylist()  # each epoch once, after two kills
    for trial in summary["trials"]:
        rows = [(r["phase"], r["epoch"]) for r in table if r["stage"] == "search" and r["trial_id"] == trial["trial"]]
        students = trial["metrics"]["student_epoch"]
        assert sorted(rows) == [*(("student", e) for e in range(1, students + 1)), ("teacher", 1)], trial["trial"]
    confirmed = sorted((r["config_key"], r["seed"]) for r in table if r["stage"] == "confirm" and r["phase"] == "student"
                       and r["epoch"] == 4)
    assert confirmed == sorted((key, seed) for key in ("control", "mll_teacher", "top1") for seed in (1, 2))
    for orphan in (t for t in study.trials if t not in ran):  # asked, never run
        assert orphan.state == optuna.trial.TrialState.FAIL and "interrupted" in orphan.user_attrs["kdtune"]


@pytest.fixture(scope="module")
def dkd_search(lambda_search, storage):
    """search.distiller --method dkd, its student distilled with DKD + CRD (CRD's memory bank keyed by the loader's
    indices inside Tune trials), confirmed with --confirm-data train over 2 paired seeds (the MLL teacher: the one
    the lambda search cached), with Ray's tables on the terminal (--verbose)."""
    done = run_module("search.distiller", "--method", "dkd", *STUDENT_SMALL, "--distiller", "dkd", "crd",
                      "--crd-nce-k", "256", "--num-samples", "2", "--confirm-top", "1", "--confirm-seeds", "2",
                      "--confirm-max-seeds", "2",
                      "--confirm-data", "train", "--storage-path", storage, "--name", "dkd", "--verbose", timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads((storage / "dkd" / "summary.json").read_text())


@pytest.mark.slow
def test_a_method_search_confirms_on_the_training_split_against_the_published_default(dkd_search, storage):
    """--confirm-data train: validation stays out, so each run also reports validation accuracy. The search's first
    trial is DKD's published default itself, which therefore confirms as the baseline, not as a top config."""
    done, summary = dkd_search
    baseline, top = summary["confirmation"]["configs"]
    assert baseline["key"] == "published"
    assert baseline["config"] == {"dkd.beta": 8.0, "dkd.alpha": 1.0, "dkd.temperature": 4.0}
    first = next(t for t in summary["trials"] if t["config"] == baseline["config"])
    assert baseline["search_val"] == first["metrics"]["student_val_acc"] and top["config"] != baseline["config"]
    for config in (baseline, top):
        assert sorted(config["seeds"]) == ["1", "2"] and {"test_acc", "val_acc"} <= set(config["estimates"])
    (comparison,) = summary["confirmation"]["comparisons"]
    assert "the published dkd (β=8, α=1, T=4)" in comparison["verdict"] and comparison["verdict"] in done.stdout
    shown = done.stdout + done.stderr  # --verbose: Ray's tables and its workers' lines, each on its own stream
    assert "Trial status:" in shown and "Checkpoint successfully created" in shown
    assert done.stdout.rstrip().splitlines()[-1].startswith("    http://")  # the links last all the same
    _, parent, trials = child_runs(storage, "kdtune-distiller_dkd", "dkd")
    assert len(trials) == 2 and all(run.info.run_name.startswith("β=") for run in trials)
    assert all({"student_train_loss_dkd_tckd", "student_train_loss_dkd_nckd", "student_train_loss_crd"}
               <= run.data.metrics.keys() for run in trials)
    assert parent.data.params["distiller"] == "dkd+crd" and parent.data.params["crd.nce_k"] == "256"
    assert "kd.alpha" not in parent.data.params, "only the chosen distillers' settings"
    _, _, confirms = child_runs(storage, "kdtune-distiller_dkd", "dkd", "confirm")
    assert len(confirms) == 4 and all("student_val_acc" in run.data.metrics for run in confirms)


@pytest.mark.slow
def test_confirmation_extends_with_more_seeds_and_a_finished_search_stays_finished(dkd_search, storage, capsys):
    """The DKD search's confirmation grows by a third seed; everything else of the finished search stays. Each
    command is the one the search prints to continue it (`search.distiller --method dkd --resume ...`)."""
    summary_path, dkd = storage / "dkd" / "summary.json", ["--method", "dkd"]
    assert_one_line_error(run_in_process(distiller.main, *dkd, "--resume", "--num-samples", "9", "--storage-path",
                                         storage, "--name", "dkd", capsys=capsys),
                          "--num-samples 9 contradicts the search dkd was started with (2)")
    finished = run_in_process(distiller.main, *dkd, "--resume", "--storage-path", storage, "--name", "dkd",
                              capsys=capsys)
    assert finished.returncode == 0 and "has finished" in finished.stdout
    assert json.loads(summary_path.read_text()) == dkd_search[1]  # nothing re-run, nothing rewritten
    assert_one_line_error(run_in_process(distiller.main, *dkd, "--confirm-only", "--confirm-data", "full",
                                         "--storage-path", storage, "--name", "dkd", capsys=capsys),
                          "contradicts the confirmation dkd already planned on train")
    more = run_module("search.distiller", *dkd, "--confirm-only", "--confirm-seeds", "3", "--storage-path", storage,
                      "--name", "dkd", timeout=600)
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    assert "confirmation confirm-2: 2 runs" in more.stdout  # seed 3 of each configuration, nothing else
    summary = json.loads(summary_path.read_text())
    assert summary["confirmation"]["seeds"] == [1, 2, 3] and summary["trials"] == dkd_search[1]["trials"]
    assert all(sorted(c["seeds"]) == ["1", "2", "3"] for c in summary["confirmation"]["configs"])
    _, parent, confirms = child_runs(storage, "kdtune-distiller_dkd", "dkd", "confirm")
    assert len(confirms) == 6 and parent.info.status == "FINISHED"
    assert "3 paired seeds" in parent.data.tags["confirm_top1_vs_published_verdict"]


@pytest.mark.slow
def test_a_mimkd_search_runs_end_to_end(lambda_search, storage):
    """search.mimkd samples critics, layers and MI weights into KD + MIMKD students, MIMKD's defaults first."""
    done = run_module("search.mimkd", *STUDENT_SMALL, "--num-samples", "2", "--confirm-seeds", "0",
                      "--storage-path", storage, "--name", "mim", timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((storage / "mim" / "summary.json").read_text())
    assert summary["trials"][0]["config"]["mimkd.critic"] == "separable" and summary["test"]["test_acc"] >= 0
    _, _, trials = child_runs(storage, "kdtune-mimkd", "mim")
    assert len(trials) == 2 and all({"student_train_loss_kd", "student_train_loss_mimkd_global"}
                                    <= run.data.metrics.keys() for run in trials)
