"""Build ready-to-train runs from typed jobs: a teacher (any registered objective, from scratch or fine-tuned), or a
student distilled from a teacher.

This is the seam the search layer calls: a job + (optionally already loaded) data splits in, a
`Run` out, whose trainer yields per-epoch results and whose state saves and resumes exactly.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch

from distill import distributed, models
from distill.config import Job, RuntimeConfig, StudentJob, TeacherJob
from distill.data import BatchSpec, DataSplits, Loader, load_splits
from distill.data.base import LabelledImages
from distill.engine import (
    Trainer, autocast_for, batch_dtype, evaluate_model, predict, resolve_device, seed_everything, uses_channels_last,
)
from distill.errors import UserError
from distill.losses import DISTILLERS, BuildContext
from distill.memory import activation_bytes, check_fits, state_bytes
from distill.models.checkpoints import atomic_save
from distill.objectives import DistillationObjective
from distill.teachers import TEACHER_OBJECTIVES, TeacherContext

CHECKPOINT_FORMAT = "kdtune-run-1"


@dataclass
class Run:
    """A trainer plus what it needs to report: its job, data and the architecture it trains."""

    kind: str
    job: TeacherJob | StudentJob
    arch: str
    splits: DataSplits
    trainer: Trainer

    def loader(self, images: LabelledImages) -> Loader:
        """An unaugmented, in-order loader over `images` on the run's device."""
        return eval_loader(images, self.splits, self.job.runtime, self.trainer.device)

    def test_metrics(self) -> dict[str, float]:
        """Test accuracy and CMI, plus per-class accuracy of zero-shot classes: for the final report only."""
        return self.trainer.evaluate(self.loader(self.splits.test), "test", self.splits.omitted_classes)

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Full resumable state, written atomically."""
        return atomic_save({"format": CHECKPOINT_FORMAT, "kind": self.kind, "trainer": self.trainer.state_dict()}, path)

    def resume(self, path: str | os.PathLike) -> None:
        """Continue from a checkpoint written by `save_checkpoint` for the same job."""
        state = models.load_torch_file(path, f"{self.kind} run checkpoint")
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or state.get("kind") != self.kind:
            raise UserError(f"{path} is not a {self.kind} run checkpoint")
        try:
            self.trainer.load_state_dict(state["trainer"])
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(f"{path} does not fit this {self.kind} run (damaged, or written by another job): "
                            f"{first}") from None

    def save_weights(self, path: str | os.PathLike) -> Path:
        """The trained net as a RepDistiller-style {'model': state_dict} file with its own description."""
        return models.save_weights(self.trainer.model, path, **self.weights_description())

    def weights_bytes(self) -> bytes:
        """The bytes of the file `save_weights` writes."""
        return models.weights_bytes(self.trainer.model, **self.weights_description())

    def weights_description(self) -> dict:
        return dict(arch=self.arch, num_classes=self.splits.num_classes, dataset=self.splits.name,
                    epoch=self.trainer.epoch, best_val_acc=self.trainer.best_val_acc)

    def describe(self) -> dict:
        """The job as plain data; a student's also says what each distiller adds in trainable parameters."""
        described = {"kind": self.kind, "arch": self.arch, **asdict(self.job)}
        if isinstance(self.job, TeacherJob):
            described["objective"] = self.job.objective.described()
        if isinstance(self.job, StudentJob):
            described.update(ce_weight=self.job.ce(), extra_parameters=self.trainer.objective.extra_parameters())
        return described


def eval_loader(images: LabelledImages, splits: DataSplits, runtime: RuntimeConfig, device: torch.device,
                dtype: torch.dtype | None = None, sharded: bool = False) -> Loader:
    """In-order, unaugmented batches in the memory format and (unless `dtype` is given) the dtype the run's nets
    consume: from memory, or streamed from files. Every worker of a data-parallel run evaluates the whole set
    (identical scores, no gathering) unless `sharded`, for a pass whose sums are reduced across the workers."""
    return images.loader(BatchSpec(splits.mean, splits.std, runtime.eval_batch_size, device, train=False,
                                   channels_last=uses_channels_last(runtime, device),
                                   dtype=dtype or batch_dtype(runtime, device), workers=runtime.data_workers,
                                   sharded=sharded))


def train_loader(images: LabelledImages, splits: DataSplits, job: Job, device: torch.device,
                 indices: bool = False) -> Loader:
    """Shuffled, augmented batches; with the samples' indices when a distiller needs them (CRD). In a
    data-parallel run each worker reads its shard of every epoch at its share of the recipe's batch."""
    return images.loader(BatchSpec(splits.mean, splits.std, distributed.per_worker_batch(job.recipe().batch_size),
                                   device, train=True, seed=job.runtime.seed,
                                   channels_last=uses_channels_last(job.runtime, device),
                                   dtype=batch_dtype(job.runtime, device), indices=indices,
                                   workers=job.runtime.data_workers, sharded=True))


def load_teacher(arch: str, checkpoint: str, num_classes: int) -> models.FeatureNet:
    """A trained teacher from a RepDistiller-style checkpoint; a missing path is a UserError."""
    if not checkpoint:
        raise UserError("a teacher checkpoint is required (--teacher-checkpoint PATH)")
    return models.load_weights(models.create(arch, num_classes), checkpoint, arch)


def batch_warning(batch_size: int, images: int, what: str) -> str | None:
    """What a user should hear when the batch is larger than the images it is drawn from: every epoch is then one
    short batch (a warning, not an error: tiny sets are legitimate, e.g. few-shot)."""
    if batch_size <= images:
        return None
    return (f"the batch size {batch_size} is larger than the {images} {what} images: each epoch is one batch of "
            f"{images}; give --batch-size {images} or less for several steps an epoch")


def check_recipe(job: Job) -> None:
    recipe = job.recipe()
    if recipe.epochs < 1 or recipe.lr <= 0 or recipe.batch_size < 1:
        raise UserError(f"epochs, lr and batch size must be positive (got {recipe.epochs}, {recipe.lr}, {recipe.batch_size})")


def prepare(job: Job, splits: DataSplits | None) -> tuple[DataSplits, torch.device]:
    check_recipe(job)
    splits = splits if splits is not None else load_splits(job.data)
    seed_everything(job.runtime.seed, job.runtime.deterministic)
    return splits, resolve_device(job.runtime.device)


def build_teacher_run(job: TeacherJob, splits: DataSplits | None = None, on_step=None,
                      teacher: models.FeatureNet | None = None, kind: str = "teacher") -> Run:
    """A teacher trained with the job's objective, starting from `teacher` (a net passed in), else from
    `job.teacher_checkpoint`, else from scratch."""
    job.objective.check()
    splits, device = prepare(job, splits)
    check_teacher_job(job, splits.num_classes, splits.train.image_shape, len(splits.train), device,
                      distributed.world()[1])
    if teacher is None:
        teacher = (load_teacher(job.arch, job.teacher_checkpoint, splits.num_classes) if job.teacher_checkpoint
                   else models.create(job.arch, splits.num_classes))
    model = teacher.to(device)

    def predict_train() -> tuple[torch.Tensor, torch.Tensor]:  # in full precision, each worker over its shard
        loader = eval_loader(splits.train, splits, job.runtime, device, torch.float32, sharded=True)
        return predict(model, loader, contextlib.nullcontext)

    objective = TEACHER_OBJECTIVES.get(job.objective.name()).build(
        job.objective, TeacherContext(model, splits.num_classes, predict_train))
    trainer = Trainer(objective, train_loader(splits.train, splits, job, device),
                      eval_loader(splits.val, splits, job.runtime, device), job.recipe(), job.runtime, device, on_step)
    return Run(kind, job, job.arch, splits, trainer)


def feature_shapes(model: models.FeatureNet, image_shape: tuple[int, ...] = (3, 32, 32)) -> list[torch.Size]:
    """Per-sample shapes of `model`'s feature list for one (C, H, W) image, probed on the device and in the dtype of
    the net's own parameters (a teacher already on the GPU, or on `meta`, works as one on the CPU)."""
    weight = next(model.parameters())
    was_training = model.training
    with torch.no_grad():
        _, feats = model.eval()(torch.zeros(1, *image_shape, device=weight.device, dtype=weight.dtype),
                                with_features=True)
    model.train(was_training)
    return [f.shape[1:] for f in feats]


def check_data_parallel(distiller: str, workers: int | None = None) -> None:
    """A UserError when `distiller` cannot train on `workers` (default: this process group's) data-parallel workers."""
    reason = DISTILLERS.get(distiller).single_process_only
    if reason and (workers if workers is not None else distributed.world()[1]) > 1:
        raise UserError(f"{distiller} cannot train on several data-parallel workers: {reason}; give it one worker "
                        "per trial")


def check_settings(job: StudentJob) -> None:
    """The student's distiller settings, each on its own (values, data-parallel use)."""
    if not job.distillers and job.ce() == 0:
        raise UserError("the student has nothing to learn from: no distiller and a CE weight of 0")
    for name, config in job.distillers.items():
        config.check()
        check_data_parallel(name)


def build_distillers(job: StudentJob, teacher: models.FeatureNet, student: models.FeatureNet,
                     image_shape: tuple[int, ...], train_labels: torch.Tensor) -> dict[str, torch.nn.Module]:
    """Each of the job's distillers from the registry, sized for these nets (their layers resolved on both)."""
    context = BuildContext(teacher, student, feature_shapes(teacher, image_shape), feature_shapes(student, image_shape),
                           train_labels)
    return {name: DISTILLERS.get(name).build(config, context) for name, config in job.distillers.items()}


def check_student_job(job: StudentJob, num_classes: int, image_shape: tuple[int, ...],
                      train_labels: torch.Tensor, device: torch.device | None = None, workers: int = 1) -> None:
    """Everything `build_student_run` would refuse about the job's settings (a layer either net lacks, a value out
    of range), found without training: the nets and the distillers' parts are built on the `meta` device, so no
    memory is spent, whatever the nets or the training set. With the `device` the run trains on (over `workers`
    data-parallel workers), a run that cannot fit its memory too."""
    check_settings(job)
    what, parts = student_memory(job, num_classes, image_shape, train_labels, workers)
    if device is not None:
        check_fits(what, parts, device)


def student_memory(job: StudentJob, num_classes: int, image_shape: tuple[int, ...], train_labels: torch.Tensor,
                   workers: int = 1) -> tuple[str, list[tuple[str, int]]]:
    """What a student run is, and the estimated bytes of each part of one worker's step (`distill.memory`), from
    its nets and distillers built on `meta` (which checks their layers and sizes on the way)."""
    with torch.device("meta"):
        teacher, student = models.create(job.teacher_arch, num_classes), models.create(job.arch, num_classes)
        distillers = build_distillers(job, teacher, student, image_shape, train_labels)
    batch = worker_batch(job, len(train_labels), workers)
    parts = [("the nets' parameters", state_bytes(student, trained=True) + state_bytes(teacher, trained=False)),
             (f"a batch of {batch}'s activations", activation_bytes(job.arch, num_classes, image_shape, batch)
              + activation_bytes(job.teacher_arch, num_classes, image_shape, batch, trained=False))]
    for name, distiller in distillers.items():
        parts += [(f"{name}'s parameters and buffers", state_bytes(distiller, trained=True)),
                  (f"{name}'s per-step tensors", distiller.step_bytes(batch))]
    return f"the student run ({job.arch} from {job.teacher_arch}, batch {batch})", parts


def check_teacher_job(job: TeacherJob, num_classes: int, image_shape: tuple[int, ...], train_images: int,
                      device: torch.device, workers: int = 1) -> None:
    """A teacher run whose net and batch cannot fit the memory of `device` is refused before anything is
    allocated."""
    check_fits(*teacher_memory(job, num_classes, image_shape, train_images, workers), device)


def teacher_memory(job: TeacherJob, num_classes: int, image_shape: tuple[int, ...], train_images: int,
                   workers: int = 1) -> tuple[str, list[tuple[str, int]]]:
    """What a teacher run is, and the estimated bytes of each part of one worker's step."""
    with torch.device("meta"):
        net = models.create(job.arch, num_classes)
    batch = worker_batch(job, train_images, workers)
    return (f"the teacher run ({job.arch}, batch {batch})",
            [("the net's parameters", state_bytes(net, trained=True)),
             (f"a batch of {batch}'s activations", activation_bytes(job.arch, num_classes, image_shape, batch))])


def worker_batch(job: Job, images: int, workers: int) -> int:
    """The images one worker's step holds: its share of the recipe's batch, which an epoch of fewer images caps."""
    return -(-min(job.recipe().batch_size, images) // workers)


def build_student_run(
    job: StudentJob, splits: DataSplits | None = None, on_step=None, teacher: models.FeatureNet | None = None
) -> Run:
    """A student distilled from a fixed teacher (passed in, or loaded from `job.teacher_checkpoint`) with each
    of the job's distillers, built from the registry by name."""
    check_settings(job)
    splits, device = prepare(job, splits)
    check_student_job(job, splits.num_classes, splits.student_train.image_shape, splits.student_train.labels, device,
                      distributed.world()[1])
    teacher = teacher or load_teacher(job.teacher_arch, job.teacher_checkpoint, splits.num_classes)
    student = models.create(job.arch, splits.num_classes)
    distillers = build_distillers(job, teacher, student, splits.student_train.image_shape, splits.student_train.labels)
    objective = DistillationObjective(student, teacher, job.ce(), distillers)
    trainer = Trainer(objective, train_loader(splits.student_train, splits, job, device, objective.needs_indices),
                      eval_loader(splits.val, splits, job.runtime, device), job.recipe(), job.runtime, device, on_step)
    return Run("student", job, job.arch, splits, trainer)


def evaluate_split(model: models.FeatureNet, splits: DataSplits, runtime: RuntimeConfig, split: str) -> dict[str, float]:
    """`{split}_acc`, `{split}_cmi` (plus zero-shot classes) of a trained net on `split`; {} when it is empty."""
    images: LabelledImages = getattr(splits, split)
    if len(images) == 0:
        return {}
    device = resolve_device(runtime.device)
    loader = eval_loader(images, splits, runtime, device)
    return evaluate_model(model.to(device), loader, autocast_for(device, runtime.precision), split,
                          splits.omitted_classes)


def test_report(model: models.FeatureNet, splits: DataSplits, runtime: RuntimeConfig) -> dict[str, float]:
    """Test accuracy and CMI of a trained net (plus zero-shot classes): for a final report only."""
    return evaluate_split(model, splits, runtime, "test")


BUILDERS = {"teacher": build_teacher_run, "mcmi": partial(build_teacher_run, kind="mcmi"),
            "student": build_student_run}
