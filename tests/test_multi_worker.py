"""A real search whose trial runs as a Ray Train `TorchTrainer` of two gloo CPU workers (DDP) inside its Tune trial,
on the tiny ImageFolder tree. One Train worker is killed with SIGKILL mid-trial: the worker group restarts from the
trial's last checkpoint, and the search ends with the records a single-process search leaves (one MLflow child run
per trial with every student epoch once, an Optuna study with each epoch's value and the links). One trial keeps
the test short: each Train run starts a driver, a controller and two workers, about 12 s on 2 cores."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

from distill import models
from search.tracking import TRIAL_TAG
from tests.conftest import REPO
from tests.test_imagefolder import write_tree
from tests.test_search import child_runs
from trainables.metrics import STUDENT_EPOCH, TEACHER_EPOCH
from trainables.multi_worker import RESTARTED, progress

EPOCHS, TRIALS = 4, 1
WORKER = "ray::RayTrainWorker"


def processes(prefix: str) -> set[int]:
    """The pids of the processes whose title starts with `prefix` (Ray names its worker processes so)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(prefix.encode()):
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def kill_a_worker_after_the_first_checkpoint(storage: Path, search: subprocess.Popen) -> int:
    """SIGKILL one Train worker of the first trial once Tune has that trial's first epoch and checkpoint; the
    killed pid."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and search.poll() is None:
        reported = [f for f in (storage / "ddp").glob("student_*/result.json") if f.read_text().strip()]
        if reported and processes(WORKER):
            victim = min(processes(WORKER))
            os.kill(victim, signal.SIGKILL)
            return victim
        time.sleep(0.05)
    raise AssertionError("the search ended (or never checkpointed) before a worker could be killed")


@pytest.mark.slow
def test_a_two_worker_search_survives_a_killed_worker_with_single_process_records(tmp_path):
    tree = write_tree(tmp_path / "tree", train=16, val=4)
    torch.manual_seed(0)
    teacher = models.save_weights(models.create("resnet8", 3), tmp_path / "teacher.pth", arch="resnet8", num_classes=3)
    storage = tmp_path / "results"
    argv = [sys.executable, "-m", "search.kd_temperature", "--dataset", "imagefolder:size=32", "--data-dir", str(tree),
            "--val-size", "6", "--teacher", "resnet8", "--student", "resnet8", "--teacher-checkpoint", str(teacher),
            "--epochs", str(EPOCHS), "--grace-period", str(EPOCHS), "--batch-size", "8", "--num-samples", str(TRIALS),
            "--workers-per-trial", "2", "--cpus-per-trial", "2", "--confirm-seeds", "0", "--storage-path",
            str(storage), "--name", "ddp"]
    with (tmp_path / "search.log").open("w") as log:
        search = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
                                  env={**os.environ, "PYTHONPATH": str(REPO), "RAY_DEDUP_LOGS": "0"})
        try:
            victim = kill_a_worker_after_the_first_checkpoint(storage, search)
            code = search.wait(timeout=400)
        finally:
            if search.poll() is None:
                os.killpg(search.pid, signal.SIGKILL)
    out, log = (tmp_path / "search.log").read_text(), (storage / "ddp" / "search.log").read_text()
    assert code == 0, out[-4000:]
    # The killed trial's worker group restarted once, from its Train checkpoint; no other trial's did. The search's
    # log has the worker's line, and the terminal its warning.
    assert log.count(RESTARTED) == 1 and out.count(RESTARTED) == 1, out[-4000:]
    assert victim not in processes(WORKER)

    summary = json.loads((storage / "ddp" / "summary.json").read_text())
    assert [t["state"] for t in summary["trials"]] == ["complete"] * TRIALS
    results = list((storage / "ddp").glob("student_*/result.json"))
    assert len(results) == TRIALS
    for result in results:
        epochs = [json.loads(line)["student_epoch"] for line in result.read_text().splitlines()]
        assert epochs == list(range(1, EPOCHS + 1))  # resumed from the checkpoint: no epoch twice, none lost

    client, parent, children = child_runs(storage, "kdtune-kd_temperature", "ddp")
    assert parent.info.status == "FINISHED" and len(children) == TRIALS
    study = optuna.load_study(study_name="ddp", storage=f"sqlite:///{storage / 'optuna.db'}")
    runs = {run.data.tags[TRIAL_TAG]: run for run in children}
    assert len(study.trials) == TRIALS
    for trial in study.trials:
        run = runs[trial.user_attrs["ray_trial_id"]]
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "student_val_acc")
                   if m.step > 0}  # step 0: the MLflow run's "no student yet", as in a single-process search
        assert sorted(history) == list(range(1, EPOCHS + 1)) and trial.intermediate_values == pytest.approx(history)
        assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == history[EPOCHS]
    assert not processes(WORKER)  # the search's Ray ended with it: no Train worker left behind


def test_reports_are_ordered_teacher_stage_first_so_a_restart_repeats_none():
    """The driver passes a report on only when it is past the last one: the epochs a restarted worker group
    repeats (it resumes from its last checkpoint, which may be older than Tune's last report) are dropped."""
    teacher_stage = [{STUDENT_EPOCH: 0, TEACHER_EPOCH: t} for t in (1, 2)]
    student_stage = [{STUDENT_EPOCH: s, "teacher_val_acc": 0.9} for s in (1, 2)]
    mll_teacher = [{TEACHER_EPOCH: 1}, {TEACHER_EPOCH: 2}]
    for reports in (teacher_stage + student_stage, mll_teacher):
        keys = [progress(r) for r in reports]
        assert keys == sorted(keys) and len(set(keys)) == len(keys) and keys[0] > (0, 0)
