"""MLL teachers trained once: brought by the user, found in a content-addressed cache, or trained first.

A cached teacher lives under `<results>/teachers/<dataset>-<arch>-<key>/`, the key `search.teacher_key`'s hash of
the teacher job and the fingerprint of the data it trains on (`distill.data.fingerprints`). A missing one is
trained as its own Ray Tune trial (the `teacher` trainable), logged as a child run of the search.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from ray import tune

import trainables
from distill import models
from distill.config import TeacherJob
from distill.data import DataSplits
from distill.errors import UserError
from distill.models import imagenet
from distill.models.checkpoints import atomic_write
from distill.runs import evaluate_split
from search import console, ownership, trust
from search.progress import TeacherProgress
from search.teacher_key import cache_key
from search.tracking import teacher_description
from search.tuning import fit
from trainables.common import TEACHER_FILE
from trainables.metrics import TEACHER_VAL_ACC

WEIGHTS, META = "weights.pth", "teacher.json"


@dataclass(frozen=True)
class Teacher:
    """The MLL teacher every trial of a search starts from, as the bytes of a `{'model': ...}` file."""

    weights: bytes
    source: str
    val_acc: float | None = None

    def describe(self) -> dict:
        return {"source": self.source, "val_acc": self.val_acc}


def teacher_params(job: TeacherJob, fingerprint: str) -> dict:
    """What the MLL teacher's run records: its net, data split, seed, training recipe and data fingerprint."""
    return {"arch": job.arch, "dataset": job.data.dataset, "val_size": job.data.val_size,
            "split_seed": job.data.split_seed, "seed": job.runtime.seed, "data_fingerprint": fingerprint,
            "cache_key": cache_key(job, fingerprint), **{f"recipe.{k}": v for k, v in asdict(job.recipe()).items()}}


def cache_folder(root: Path, job: TeacherJob, fingerprint: str) -> Path:
    return root / f"{job.data.dataset}-{job.arch}-{cache_key(job, fingerprint)}"


def brought(spec, splits: DataSplits) -> Teacher | None:
    """The teacher the user chose on the command line (a checkpoint, or torchvision's pretrained weights); None when
    the search trains (or finds cached) its own."""
    job = spec.jobs.teacher
    if spec.teacher_checkpoint:
        net = models.load_weights(models.create(job.arch, splits.num_classes), spec.teacher_checkpoint, job.arch)
        return scored(net, job, splits, f"checkpoint {Path(spec.teacher_checkpoint).resolve()}")
    if spec.pretrained_teacher:
        return scored(imagenet.pretrained(job.arch, splits.num_classes), job, splits,
                      f"torchvision's pretrained {job.arch}")
    return None


def scored(net: models.FeatureNet, job: TeacherJob, splits: DataSplits, source: str) -> Teacher:
    """The teacher `net`, scored on the search's validation split (the accuracy a trial teacher's collapse is
    judged against)."""
    val_acc = evaluate_split(net, splits, job.runtime, "val").get("val_acc")
    return Teacher(models.weights_bytes(net, arch=job.arch, num_classes=splits.num_classes), source, val_acc)


def from_cache(folder: Path, job: TeacherJob, num_classes: int) -> Teacher | None:
    """The cached teacher in `folder`, checked before any trial receives it: weights that load into the job's net
    (weights-only) and a readable record; a damaged entry is one UserError that says to delete it."""
    if not (folder / WEIGHTS).is_file():
        return None
    advice = f"delete {folder} and the search trains the teacher again"
    try:
        meta = json.loads((folder / META).read_text()) if (folder / META).is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"the cached teacher's record {folder / META} is damaged ({err}); {advice}") from None
    val_acc = meta.get("val_acc") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or not (val_acc is None or isinstance(val_acc, (int, float))):
        raise UserError(f"the cached teacher's record {folder / META} is not one kdtune wrote; {advice}")
    weights = (folder / WEIGHTS).read_bytes()
    try:
        models.load_weights(models.create(job.arch, num_classes), weights, job.arch)
    except UserError as err:
        raise UserError(f"the cached teacher {folder / WEIGHTS} cannot be used ({err}); {advice}") from None
    return Teacher(weights, f"cache {folder}", val_acc)


def obtain(job: TeacherJob, splits: DataSplits, cache_root: Path, train) -> Teacher:
    """The cached teacher for `job`, else `train(job)` -> (weights, val_acc), cached before it is returned."""
    folder = cache_folder(cache_root, job, splits.fingerprint)
    with ownership.creating(folder, waiting=f"MLL teacher: another search is training it into {folder}"):
        return cached_or_trained(folder, job, splits, train)


def cached_or_trained(folder: Path, job: TeacherJob, splits: DataSplits, train) -> Teacher:
    """`obtain`'s work, done by one search at a time per teacher."""
    cached = from_cache(folder, job, splits.num_classes)
    if cached is not None:
        console.say(f"MLL teacher: {job.arch} from {folder}")
        return cached
    key = cache_key(job, splits.fingerprint)
    console.say(f"MLL teacher: no cached {job.arch} for {job.data.dataset} (key {key}); training it first as its own "
                f"Ray trial, {job.recipe().epochs} epochs")
    weights, val_acc = train(job)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(json.dumps({"val_acc": val_acc, "job": asdict(job), "data_fingerprint": splits.fingerprint,
                             "key": key}, indent=2, default=str).encode(), folder / META)
    atomic_write(weights, folder / WEIGHTS)
    console.say(f"MLL teacher: {job.arch} reached val acc {100 * val_acc:.2f}%; cached in {folder}")
    return Teacher(weights, f"trained now, cached in {folder}", val_acc)


def tune_folder(storage: Path, job: TeacherJob, fingerprint: str) -> Path:
    """The Tune experiment that trains (or trained) the MLL teacher of `job` under the storage path."""
    return storage / f"teacher-{job.data.dataset}-{job.arch}-{cache_key(job, fingerprint)}"


def teacher_advice(folder: Path) -> str:
    return f"delete {folder}, and the search trains the MLL teacher afresh"


def check_before_start(spec, splits: DataSplits) -> None:
    """What a search would read of its MLL teacher, checked before it makes its folder: the cached teacher (weights
    and record), else the signature of a teacher Tune experiment it would continue."""
    if spec.teacher_checkpoint or spec.pretrained_teacher:
        return
    job = spec.jobs.teacher
    cache = cache_folder(spec.storage / "teachers", job, splits.fingerprint)
    lock = ownership.Lock(cache.with_name(cache.name + ".lock"))
    if cache.parent.is_dir() and not lock.acquire():
        return  # another search trains it now: this one waits for it, and reads what it caches
    try:
        if from_cache(cache, job, splits.num_classes) is None:
            folder = tune_folder(spec.storage, job, splits.fingerprint)
            trust.check(folder, teacher_advice(folder))
    finally:
        lock.release()


def train_with_tune(
    job: TeacherJob, splits: DataSplits, storage: Path, place, run_config_for
) -> tuple[bytes, float]:
    """Train the teacher as a one-trial Tune experiment (resumable after a driver crash, like a search);
    `place(trainable, **inputs)` gives it the search's resources per trial (and workers, when several)."""
    path = tune_folder(storage, job, splits.fingerprint)
    name = path.name
    trainable = place(trainables.teacher, job=job, splits=splits)
    tuner = trust.tuner(path, trainable, teacher_advice(path), lambda: tune.Tuner(
        trainable, tune_config=tune.TuneConfig(num_samples=1),
        run_config=run_config_for(name, partial(teacher_description, f"MLL teacher {job.arch}",
                                                teacher_params(job, splits.fingerprint)), storage,
                                  TeacherProgress(f"MLL teacher {job.arch}", job.recipe().epochs))))
    result = fit(tuner, path)[0]
    if result.error is not None or result.checkpoint is None:
        reason = str(result.error).strip().splitlines()[-1] if result.error else "it left no checkpoint"
        raise UserError(f"training the MLL teacher failed: {reason}")
    with result.checkpoint.as_directory() as folder:
        weights = (Path(folder) / TEACHER_FILE).read_bytes()
    return weights, float(result.metrics[TEACHER_VAL_ACC])
