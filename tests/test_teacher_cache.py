"""The MLL teacher cache hands back a teacher only for the same job on the same data: the key covers the whole
job (less where and how fast it runs) and the data's fingerprint, so two trees that differ in one image, or a
CIFAR folder whose files changed under --no-verify, get a teacher each; and two searches that need one teacher at
once train it once."""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

from distill import models
from distill.config import DataConfig, RuntimeConfig, TeacherJob
from distill.data import load_splits
from search import teacher_key, teachers
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
    key = teacher_key.cache_key(job, "data")
    assert teacher_key.cache_key(job, "other data") != key
    changed = [replace(job, optim=replace(job.recipe(), weight_decay=1e-4)), replace(job, arch="resnet14"),
               replace(job, data=replace(job.data, val_size=100)), replace(job, data=replace(job.data, split_seed=1)),
               replace(job, runtime=replace(job.runtime, seed=1))]
    assert len({teacher_key.cache_key(j, "data") for j in changed} | {key}) == len(changed) + 1
    same = [replace(job, optim=job.recipe()),  # the default recipe spelled out is the default recipe
            replace(job, data=replace(job.data, data_dir="/elsewhere", download=True, verify_md5=False)),
            replace(job, data=replace(job.data, few_shot_fraction=0.1, few_shot_mode="first", zero_shot_classes=(3,))),
            replace(job, runtime=RuntimeConfig(device="cpu", precision="fp32", compile="default", data_workers=4))]
    assert {teacher_key.cache_key(j, "data") for j in same} == {key}



DIGITS_TEACHER = TeacherJob(arch="resnet8", data=DataConfig(dataset="digits"))


def search_needing_the_teacher(cache: str, out: str, training, waiting, first: bool) -> None:
    """One search's teacher stage, in its own process: obtain the digits teacher, training it when the cache lacks
    it (the first search holds its training until the second is about to ask); what it printed and got go to `out`."""
    import contextlib

    def train(job: TeacherJob) -> tuple[bytes, float]:
        with open(Path(out).with_suffix(".trained"), "w") as marker:
            marker.write(str(os.getpid()))
        training.set()
        if first:
            waiting.wait(120)
            time.sleep(2)  # the second search reaches the lock meanwhile
        return models.weights_bytes(models.create(job.arch, 10), arch=job.arch, num_classes=10), 0.5

    splits = load_splits(DIGITS_TEACHER.data)
    with open(out, "w") as printed, contextlib.redirect_stdout(printed):
        if not first:
            waiting.set()
        teacher = teachers.obtain(DIGITS_TEACHER, splits, Path(cache), train)
        print(f"source: {teacher.source}; weights {hashlib.sha256(teacher.weights).hexdigest()}")


def test_a_search_that_needs_a_teacher_another_is_training_waits_for_it_instead_of_training_it_twice(tmp_path):
    """Two real processes race for one uncached teacher: the second says whom it waits for, trains nothing, and gets
    the very weights the first trained and cached."""
    context = multiprocessing.get_context("spawn")
    training, waiting = context.Event(), context.Event()
    cache, outs = tmp_path / "teachers", [tmp_path / "first.out", tmp_path / "second.out"]
    first = context.Process(target=search_needing_the_teacher,
                            args=(str(cache), str(outs[0]), training, waiting, True))
    first.start()
    assert training.wait(120), "the first search never began training"
    second = context.Process(target=search_needing_the_teacher,
                             args=(str(cache), str(outs[1]), training, waiting, False))
    second.start()
    for process in (first, second):
        process.join(180)
        assert process.exitcode == 0
    first_out, second_out = (path.read_text() for path in outs)
    assert outs[0].with_suffix(".trained").is_file() and not outs[1].with_suffix(".trained").exists()
    assert f"another search is training it into {cache}" in second_out and f"waiting for PID {first.pid}" in second_out
    assert "source: trained now" in first_out and "source: cache " in second_out
    assert first_out.rsplit("weights ", 1)[1] == second_out.rsplit("weights ", 1)[1]


def test_a_teachers_key_is_the_one_earlier_versions_filed_it_under():
    """Cached teachers stay found across releases: the key of a fixed job and data is pinned (a change to what is
    hashed, or how, must bump CACHE_FORMAT and this value together)."""
    assert teacher_key.CACHE_FORMAT == 2
    assert teacher_key.cache_key(DIGITS_TEACHER, "data") == "ef9ae7f57202e076"
    assert teacher_key.identity(DIGITS_TEACHER)["runtime"] == {"seed": DIGITS_TEACHER.runtime.seed}
