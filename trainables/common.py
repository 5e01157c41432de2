"""What every trainable shares: threads, checkpoints in and out of Tune, and per-epoch reports."""
from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import ray
import torch
from ray import tune

from distill import models
from distill.config import RuntimeConfig
from distill.data import DataSplits
from distill.engine import EpochResult, NonFiniteLossError
from distill.runs import Run, evaluate_split
from trainables.metrics import GPU_MEMORY_GIB, IMAGES_PER_SEC, PROGRESS, STUDENT_EPOCH, STUDENT_VAL_ACC, metric

STATE_FILE = "state.pth"  # the trainable's full resumable state
TEACHER_FILE = "teacher.pth"  # RepDistiller-format weights of the teacher the student learns from
STUDENT_FILE = "student.pth"  # RepDistiller-format weights of the student (or of a trained MLL teacher)


def use_assigned_cpus() -> None:
    """One torch thread per CPU Ray gave this trial, so concurrent trials do not oversubscribe cores."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))


def restored_files() -> dict[str, bytes]:
    """The files of the trial's last checkpoint by name; empty on a fresh start."""
    return checkpoint_files(tune.get_checkpoint())


def checkpoint_files(checkpoint: tune.Checkpoint | None) -> dict[str, bytes]:
    """The files of a Tune or Train checkpoint by name; empty for none."""
    if checkpoint is None:
        return {}
    with checkpoint.as_directory() as folder:
        return {path.name: path.read_bytes() for path in Path(folder).glob("*.pth")}


Trial = Callable[..., Iterator["Report"]]  # trial(config, restored=files, **inputs): a trial's epochs


def runs(trial: Trial) -> Callable[[Callable], Callable]:
    """Marks a Tune trainable with the generator it runs in its own process, for `trainables.multi_worker` to run
    the same generator on each worker of a data-parallel trial."""
    def mark(trainable: Callable) -> Callable:
        trainable.trial = trial
        return trainable

    return mark


def read_state(files: dict[str, bytes]) -> dict | None:
    """The trainable's own state from restored checkpoint files (tensors and plain data only)."""
    if STATE_FILE not in files:
        return None
    return models.load_torch_file(files[STATE_FILE], "trial checkpoint state")


Report = tuple[dict[str, float], dict[str, bytes]]  # (metrics, checkpoint files by name) of one epoch


def report_all(stage: Iterator[Report]) -> None:
    """The thin Tune adapter: each (metrics, files) a stage yields becomes one `ray.tune.report`."""
    for metrics, files in stage:
        report(metrics, files)


def progress_first(metrics: dict[str, float]) -> dict[str, float]:
    """`metrics` with the `PROGRESS` ones first: the columns of Tune's status table."""
    return {**{name: metrics[name] for name in PROGRESS if name in metrics}, **metrics}


def report(metrics: dict[str, float], files: dict[str, bytes]) -> None:
    """One `ray.tune.report`, with a checkpoint folder holding `files` when there are any."""
    metrics = progress_first(metrics)
    if not files:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        for name, payload in files.items():
            Path(folder, name).write_bytes(payload)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def state_bytes(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def stage_metrics(stage: str, result: EpochResult) -> dict[str, float]:
    """An engine result under the stage's prefix (teacher_val_acc, student_train_loss_kd, ...), and the trial's
    current speed and GPU memory under names that do not depend on the stage (the progress table's columns)."""
    current = {IMAGES_PER_SEC: result.images_per_sec}
    if result.gpu_memory_gib is not None:
        current[GPU_MEMORY_GIB] = result.gpu_memory_gib
    return {**{metric(stage, name): value for name, value in result.metrics().items()}, **current}


def resumed_epochs(run: Run, state: dict | None) -> Iterator[EpochResult]:
    """The run's remaining epochs after its trainer's saved state (`state["trainer"]`, when resuming); a NaN/inf
    loss ends the stage with `Diverged` instead of an error. Every stage of every trial trains through this."""
    if state is not None:
        run.trainer.load_state_dict(state["trainer"])
    try:
        yield from run.trainer.epochs()
    except NonFiniteLossError as err:
        raise Diverged(str(err)) from None


class Diverged(Exception):
    """The trial's loss left the finite range: reported as a finished trial with its reason, not retried."""


DIVERGED_KEY = "diverged"  # 1 in the final report of a trial whose loss left the finite range


def diverged_metrics(stage: str, reason: str, epoch: int) -> dict:
    """The final report of a diverged trial: no usable student, scored 0 so the sampler steers away."""
    return {DIVERGED_KEY: 1, "failure_reason": f"{stage} diverged: {reason}", STUDENT_VAL_ACC: 0.0,
            STUDENT_EPOCH: epoch}


def evaluation(stage: str, net: models.FeatureNet, splits: DataSplits, runtime: RuntimeConfig,
               parts: tuple[str, ...] = ("test",)) -> dict[str, float]:
    """`net` scored once on each of `parts` that this trial was given, as `{stage}_test_acc` etc.

    Search trials receive no test images, so this is empty for them; a confirmation run is given the
    test set and reports its last epoch's test accuracy this way, exactly once."""
    scores: dict[str, float] = {}
    for part in parts:
        scores.update({metric(stage, k): v for k, v in evaluate_split(net, splits, runtime, part).items()})
    return scores


def load_net(payload: bytes, arch: str, num_classes: int) -> models.FeatureNet:
    """A zoo net from the bytes of a `{'model': state_dict}` file, strictly (a mismatch names the likely net)."""
    return models.load_weights(models.create(arch, num_classes), payload, arch)
