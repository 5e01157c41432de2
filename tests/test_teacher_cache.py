"""The MLL teacher cache hands back a teacher only for the same job on the same data: the key covers the whole
job (less where and how fast it runs) and the data's fingerprint, so two trees that differ in one image, or a
CIFAR folder whose files changed under --no-verify, get a teacher each."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from distill import models
from distill.config import DataConfig, RuntimeConfig, TeacherJob
from distill.data import load_splits
from search import teachers
from tests.conftest import make_cifar100
from tests.test_imagefolder import write_tree


class Trainer:
    """Stands in for `teachers.train_with_tune`: counts the teachers it was asked to train."""

    def __init__(self, arch: str, classes: int) -> None:
        self.jobs: list[TeacherJob] = []
        self.weights = models.weights_bytes(models.create(arch, classes), arch=arch, num_classes=classes)

    def __call__(self, job: TeacherJob) -> tuple[bytes, float]:
        self.jobs.append(job)
        return self.weights, 0.5


def obtain(job: TeacherJob, cache: Path, trainer: Trainer) -> teachers.Teacher:
    return teachers.obtain(job, load_splits(job.data), cache, trainer)


def test_two_trees_that_differ_in_one_image_get_two_teachers_and_one_tree_read_twice_gets_one(tmp_path):
    first = write_tree(tmp_path / "first")
    second = tmp_path / "second"
    shutil.copytree(first, second)  # the same files, sizes and times in another place: the same data
    job = TeacherJob(arch="resnet8", data=DataConfig(dataset="imagefolder:size=16", data_dir=str(first), val_size=3))
    trainer, cache = Trainer("resnet8", 3), tmp_path / "teachers"
    obtain(job, cache, trainer)
    assert obtain(job, cache, trainer).source.startswith("cache ") and len(trainer.jobs) == 1  # read twice: one
    moved = replace(job, data=replace(job.data, data_dir=str(second)))
    assert obtain(moved, cache, trainer).source.startswith("cache ") and len(trainer.jobs) == 1  # where: not a key
    image = second / "train" / "bee" / "4.JPEG"
    image.write_bytes(image.read_bytes()[:-8] + b"\0" * 8)  # one image changed in place, same size
    assert obtain(moved, cache, trainer).source.startswith("trained now") and len(trainer.jobs) == 2
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2


def test_a_cifar_folder_changed_under_no_verify_gets_its_own_teacher(tmp_path):
    folder = make_cifar100(tmp_path / "data", train=200, test=50)
    job = TeacherJob(arch="resnet8", data=DataConfig(dataset="cifar100", data_dir=str(tmp_path / "data"),
                                                     verify_md5=False, val_size=100))
    trainer, cache = Trainer("resnet8", 100), tmp_path / "teachers"
    obtain(job, cache, trainer)
    obtain(job, cache, trainer)
    assert len(trainer.jobs) == 1
    make_cifar100(tmp_path / "data", train=200, test=50, seed=1)  # other images and labels, the same files' names
    assert (folder / "train").is_file()
    obtain(job, cache, trainer)
    assert len(trainer.jobs) == 2


def test_the_key_covers_every_field_that_shapes_the_teacher_and_no_field_that_only_runs_it():
    job = TeacherJob(arch="resnet8", data=DataConfig(dataset="digits"))
    key = teachers.cache_key(job, "data")
    assert teachers.cache_key(job, "other data") != key
    changed = [replace(job, optim=replace(job.recipe(), weight_decay=1e-4)), replace(job, arch="resnet14"),
               replace(job, data=replace(job.data, val_size=100)), replace(job, data=replace(job.data, split_seed=1)),
               replace(job, runtime=replace(job.runtime, seed=1))]
    assert len({teachers.cache_key(j, "data") for j in changed} | {key}) == len(changed) + 1
    same = [replace(job, optim=job.recipe()),  # the default recipe spelled out is the default recipe
            replace(job, data=replace(job.data, data_dir="/elsewhere", download=True, verify_md5=False)),
            replace(job, data=replace(job.data, few_shot_fraction=0.1, few_shot_mode="first", zero_shot_classes=(3,))),
            replace(job, runtime=RuntimeConfig(device="cpu", precision="fp32", compile="default", data_workers=4))]
    assert {teachers.cache_key(j, "data") for j in same} == {key}

