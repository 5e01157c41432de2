"""ImageFolder trees streamed from disk: the layout read with torchvision's rules, validation held out of train and
the official val folder as the test set, batches decoded and augmented by workers with the in-memory loader's
interface (seeded, resumable), runs that train on them, and one-line errors for trees that cannot be used.
The tree is a few dozen small JPEGs written here; nothing is downloaded."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distill import models
from distill.config import DataConfig, OptimConfig, RuntimeConfig, StudentJob
from distill.data import BatchSpec, load_raw, load_splits, make_splits
from distill.data.imagefolder import IMAGENET_MEAN, IMAGENET_STD
from distill.data.stream import FileSet
from distill.losses import KDConfig
from distill.losses.crd import CRDConfig
from distill.runs import build_student_run
from tests.conftest import assert_one_line_error, run_in_process

CLASSES = ("ant", "bee", "cat")


def write_tree(root: Path, train: int = 10, val: int = 3, classes=CLASSES) -> Path:
    """ROOT/train/CLASS/i.JPEG and ROOT/val/CLASS/i.JPEG: 40 x 30 JPEGs of a class's colour plus noise."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, count in (("train", train), ("val", val)):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                colour = torch.zeros(1, 1, 3)
                colour[..., c % 3] = 200
                image = (colour + 40 * torch.rand(30, 40, 3, generator=g)).clamp(0, 255).to(torch.uint8)
                Image.fromarray(image.numpy()).save(root / split / name / f"{i}.JPEG", quality=90)
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("imagefolder"))


def test_the_tree_reads_as_train_and_official_val_with_imagenet_statistics(tree):
    raw = load_raw("imagefolder:size=32", tree)
    assert raw.class_names == CLASSES and (len(raw.train), len(raw.test)) == (30, 9)
    assert (raw.mean, raw.std) == (IMAGENET_MEAN, IMAGENET_STD) and raw.default_val_size == 3
    assert isinstance(raw.train, FileSet) and raw.train.image_shape == (3, 32, 32)
    assert raw.test.labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3
    splits = make_splits(raw, val_size=6, seed=0, few_shot_fraction=0.5, zero_shot_classes=(2,))
    assert (len(splits.train), len(splits.val)) == (24, 6) and sorted(splits.val.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    assert set(splits.train.paths).isdisjoint(splits.val.paths)  # validation is held out of train
    assert 2 not in splits.student_train.labels.tolist() and len(splits.student_train) == 8  # half of 16 ants+bees
    assert load_raw("imagefolder", tree).train.image_shape == (3, 224, 224)  # the ImageNet crop by default


def test_batches_are_decoded_augmented_seeded_and_resumable(tree):
    files = load_raw("imagefolder:size=32", tree).train

    def loader(seed=1, workers=2):
        return files.loader(BatchSpec(IMAGENET_MEAN, IMAGENET_STD, 8, "cpu", train=True, seed=seed, channels_last=True,
                                      dtype=torch.bfloat16, indices=True, workers=workers))

    first = loader()
    epoch1, epoch2 = list(first), list(first)
    images, labels, positions = epoch1[0]
    assert len(epoch1) == len(first) == 3 and images.shape == (8, 3, 32, 32) and images.dtype == torch.bfloat16
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(labels, files.labels[positions])  # each sample's position in the set, for CRD
    again = loader()
    assert all(torch.equal(a[0], b[0]) for a, b in zip(epoch1, list(again)))  # same seed, same crops and order
    assert all(torch.equal(a[0], b[0]) for a, b in zip(epoch1, list(loader(workers=1))))  # whoever decodes them
    resumed = loader(seed=99)
    resumed.load_state_dict(again.state_dict())
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[2], b[2]) for a, b in zip(epoch2, list(resumed)))
    assert not torch.equal(epoch1[0][0], epoch2[0][0])  # each epoch draws anew
    evaluation = files.loader(BatchSpec(IMAGENET_MEAN, IMAGENET_STD, 7, "cpu", train=False, workers=1))
    walked = torch.cat([x for x, _ in evaluation])
    assert len(evaluation) == 5 and walked.shape == (30, 3, 32, 32)  # every image once, in order
    torch.testing.assert_close(walked[:2], evaluation.normalize(files.subset(torch.arange(2)).to_images().images))


def test_a_student_trains_on_the_tree_with_crd_and_reports_test_once(tree):
    data = DataConfig(dataset="imagefolder:size=32", data_dir=str(tree), val_size=6)
    splits = load_splits(data)
    teacher = models.create("tv_resnet18", splits.num_classes)
    job = StudentJob(arch="resnet8", teacher_arch="tv_resnet18", data=data, optim=OptimConfig(epochs=2, batch_size=8),
                     runtime=RuntimeConfig(data_workers=1), distillers={"kd": KDConfig(), "crd": CRDConfig(nce_k=8)})
    run = build_student_run(job, splits, teacher=teacher)
    results = list(run.trainer.epochs())
    assert [r.epoch for r in results] == [1, 2] and results[-1].train_terms.keys() == {"ce", "kd", "crd"}
    assert 0 <= results[-1].val_acc <= 1 and 0 <= run.test_metrics()["test_acc"] <= 1


def test_trees_that_cannot_be_used_end_in_one_line(tmp_path, capsys):
    from distill.data.__main__ import main

    def refused(root: Path, *fragments: str, dataset: str = "imagefolder") -> None:
        assert_one_line_error(run_in_process(main, "info", "--dataset", dataset, "--data-dir", root, capsys=capsys),
                              *fragments)

    refused(tmp_path / "nowhere", "is not a folder")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    refused(tmp_path / "empty", "has no class folders")
    mismatched = write_tree(tmp_path / "mismatched", train=2, val=1)
    (mismatched / "val" / "cat").rename(mismatched / "val" / "dog")
    refused(mismatched, "differ from train's", "missing ['cat']", "extra ['dog']")
    hollow = write_tree(tmp_path / "hollow", train=2, val=1)
    for jpeg in (hollow / "train" / "bee").iterdir():
        jpeg.unlink()
    refused(hollow, "Found no valid file for the classes bee")
    damaged = write_tree(tmp_path / "damaged", train=2, val=1)
    (damaged / "train" / "ant" / "0.JPEG").write_bytes(b"")
    (damaged / "val" / "bee" / "0.JPEG").write_text("not an image")
    refused(damaged, f"1 of the 6 files under {damaged / 'train'} are not images the decoder reads",
            "e.g. ant/0.JPEG: remove or replace them")
    (damaged / "train" / "ant" / "0.JPEG").write_bytes((damaged / "train" / "ant" / "1.JPEG").read_bytes())
    refused(damaged, f"1 of the 3 files under {damaged / 'val'}", "e.g. bee/0.JPEG")
    refused(write_tree(tmp_path / "small", train=2, val=1), "has 3 class folders; imagenet has 1000",
            dataset="imagenet")
    refused(tmp_path / "small", "size must be a whole number", dataset="imagefolder:size=big")
    refused(tmp_path / "small", "unknown parameter colour", dataset="imagefolder:colour=1")


def test_the_command_line_trains_a_torchvision_net_on_the_tree_and_tests_it_once(tree, tmp_path, capsys):
    import json

    from distill import train

    done = run_in_process(train.main, "teacher", "--dataset", "imagefolder:size=32", "--data-dir", tree, "--arch",
                          "tv_resnet18", "--epochs", "1", "--batch-size", "8", "--val-size", "6", "--data-workers",
                          "1", "--test", "--out", tmp_path / "t", capsys=capsys)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert metrics["run"]["arch"] == "tv_resnet18" and 0 <= metrics["test"]["test_acc"] <= 1
    recipe = metrics["run"]["optim"]  # ImageNet's, shortened to one epoch at batch 8
    assert (recipe["epochs"], recipe["batch_size"], recipe["weight_decay"], recipe["momentum"]) == (1, 8, 1e-4, 0.9)
    assert_one_line_error(run_in_process(train.main, "teacher", "--dataset", "digits", "--data-workers", "0", "--out",
                                         tmp_path / "u", capsys=capsys), "--data-workers must be positive")


def test_decode_workers_follow_the_cpus_a_trial_was_given():
    """A search trial sets torch's threads to its CPUs (trainables.common.use_assigned_cpus); the loader's default
    worker count follows them, so packed trials do not each start eight decoders."""
    from distill.data.stream import default_workers

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert default_workers() == 1
        torch.set_num_threads(3)
        assert default_workers() == 3
    finally:
        torch.set_num_threads(threads)


def test_a_file_with_a_sound_header_and_a_damaged_body_fails_with_its_path(tmp_path):
    from distill.data.stream import DecodedFiles

    sound = write_tree(tmp_path / "tree", train=1, val=1) / "train" / "ant" / "0.JPEG"
    damaged = tmp_path / "damaged.JPEG"
    damaged.write_bytes(sound.read_bytes()[:100])
    files = DecodedFiles([str(sound), str(damaged)], torch.tensor([0, 0]), side=16, train=False)
    assert files[0, 7][0].shape == (3, 16, 16)  # (position, augmentation seed)
    with pytest.raises(RuntimeError, match=f"cannot decode {damaged}: "):
        files[1, 7]
