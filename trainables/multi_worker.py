"""A trial that spans several GPUs (or CPU workers): Ray Train's `TorchTrainer` inside a Tune trial.

This follows Ray 2.60's pattern for Train inside Tune: the Tune trial is a small driver that builds a
`TorchTrainer` named after the trial and waits for it. Each Train worker runs the trial's own generator (the one
a single-process trial runs) inside the process group Train sets up, so `distill.distributed` makes the run data
parallel (DDP, one GPU per worker, gloo on CPUs). Every worker reports each epoch; rank 0 attaches the checkpoint.
A Train callback hands rank 0's reports to the driver, which reports them to Tune with the checkpoint's files, so
ASHA, Optuna, the MLflow child runs (logged by the search's driver) and the search's reading of checkpoints are
exactly those of a single-process trial.

Resume: a worker that dies restarts the whole worker group from the last Train checkpoint (Train's
`FailureConfig`); the epochs it repeats, which Tune may already have, are not passed on again. A driver that Tune restarts (node loss, `--resume`) builds the same-named Train run, which
restores from its own snapshot, or from the Tune checkpoint handed down when Train has none.
"""
from __future__ import annotations

import logging
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import torch
from ray import tune
from ray.util.queue import Empty

from trainables import common
from trainables.metrics import STUDENT_EPOCH, TEACHER_EPOCH

# The driver only waits for reports: it holds no CPU, so the workers can have them all. Tune needs a non-empty
# resource request, hence a token of memory.
DRIVER_RESOURCES = {"cpu": 0, "memory": 2**20}
TRAIN_RUNS = "train_runs"  # under the search's storage: each multi-worker trial's Train run (its own checkpoints)
REPORT_POLL_S = 5.0  # how often the driver checks that its Train run still runs while no report comes
RESTARTED = "the trial's workers restarted"  # what rank 0 prints when the group resumes from a Train checkpoint
TRAIN_LOG_LEVEL = "WARNING"  # Train's per-report INFO lines (every worker, every epoch) would drown Tune's table


def worker_loop(loop_config: dict) -> None:
    """One Train worker: the trial's generator in this worker's process group; each epoch reported by every worker
    (Train's report is collective), rank 0 with the checkpoint files."""
    import ray.train
    import ray.train.torch

    # Train logs each report of each worker at INFO through a logger named by its file, outside the `ray.train`
    # tree that its LoggingConfig filters; the root logger's level reaches it.
    logging.getLogger().setLevel(TRAIN_LOG_LEVEL)
    context = ray.train.get_context()
    if loop_config["use_gpu"]:
        torch.cuda.set_device(ray.train.torch.get_device())
    torch.set_num_threads(max(1, int(loop_config["cpus_per_worker"])))
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None and context.get_world_rank() == 0:  # not print: Train copies that to its logger too
        sys.stdout.write(f"warning: {RESTARTED} from {checkpoint.path}\n")  # a warning: the terminal shows it
        sys.stdout.flush()
    restored = common.checkpoint_files(checkpoint) or ray.get(loop_config["restored"])
    trial: common.Trial = loop_config["trial"]
    inputs = ray.get(loop_config["inputs"])
    for metrics, files in trial(loop_config["config"], restored=restored, **inputs):
        if context.get_world_rank() == 0 and files:
            with tempfile.TemporaryDirectory() as folder:
                for name, payload in files.items():
                    Path(folder, name).write_bytes(payload)
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
        else:
            ray.train.report(metrics)


def progress(metrics: dict) -> tuple[float, float]:
    """Where a report stands in its trial: (student epoch, teacher epoch), 0 for a stage not reached or done, so
    a teacher stage's reports come before the student's and each stage's in epoch order."""
    student = metrics.get(STUDENT_EPOCH) or 0
    return student, 0 if student else (metrics.get(TEACHER_EPOCH) or 0)


def forward_reports(reports):
    """A Train callback that hands rank 0's metrics and the checkpoint of each report to the trial's driver."""
    from ray.train.v2.api.callback import UserCallback

    class ForwardReports(UserCallback):
        def after_report(self, run_context, metrics: list[dict], checkpoint) -> None:
            reports.put((metrics[0], checkpoint))

    return ForwardReports()


def drive(config: dict, trial: common.Trial, workers: int, use_gpu: bool, cpus_per_worker: float, storage: str,
          max_failures: int, inputs: dict) -> None:
    """The Tune trial: a TorchTrainer of `workers` workers running `trial`, its reports passed on to Tune."""
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    context = tune.get_context()
    reports = Queue(maxsize=1, actor_options={"num_cpus": 0})
    resources = {"CPU": cpus_per_worker, **({"GPU": 1} if use_gpu else {})}
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config={"trial": trial, "config": config, "inputs": ray.put(inputs), "use_gpu": use_gpu,
                           "cpus_per_worker": cpus_per_worker, "restored": ray.put(common.restored_files())},
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=f"{context.get_experiment_name()}-{context.get_trial_id()}", storage_path=storage,
            callbacks=[forward_reports(reports)], failure_config=ray.train.FailureConfig(max_failures=max_failures),
            logging_config=ray.train.LoggingConfig(log_level=TRAIN_LOG_LEVEL),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)),  # the driver copies one while the next lands
    )
    outcome: dict[str, BaseException] = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as err:  # re-raised below, in the trial's own thread
            outcome["error"] = err
        finally:
            reports.put(None)

    thread = threading.Thread(target=fit, name="train-run", daemon=True)
    thread.start()
    reported = (0, 0)
    while True:
        try:
            item = reports.get(timeout=REPORT_POLL_S)
        except Empty:
            if thread.is_alive():
                continue
            break
        if item is None:
            break
        metrics, checkpoint = item
        if progress(metrics) <= reported and not metrics.get(common.DIVERGED_KEY):
            continue  # a restarted worker group repeating an epoch Tune already has
        reported = progress(metrics)
        common.report(metrics, common.checkpoint_files(checkpoint))
    thread.join()
    if "error" in outcome:
        raise outcome["error"]


def multi_worker(trainable: Callable, workers: int, use_gpu: bool, cpus_per_worker: float, storage: Path,
                 max_failures: int) -> Callable:
    """The Tune trainable that runs `trainable`'s trial (see `common.runs`) on `workers` data-parallel workers."""
    trial = trainable.trial

    def driver(config: dict, **inputs) -> None:
        drive(config, trial, workers, use_gpu, cpus_per_worker, str(storage / TRAIN_RUNS), max_failures, inputs)

    driver.__name__ = trainable.__name__
    return driver
