"""Data layer: official CIFAR pickles through the real loader, md5 checks, download, splits, digits."""
from __future__ import annotations

import functools
import pickle
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.datasets.utils import calculate_md5

from distill.data import DataConfig, load_raw, load_splits, make_splits
from distill.errors import UserError
from distill.metrics import accuracy, per_class_accuracy
from tests.conftest import (
    assert_one_line_error, make_cifar10, make_cifar100, run_in_process, run_module, write_pickle,
)


def official_sums_of(folder: Path, monkeypatch: pytest.MonkeyPatch, tv_class: type) -> None:
    """Make the fake files 'official' by pointing torchvision's checksum table at their md5s."""
    md5 = {p.name: calculate_md5(str(p)) for p in folder.iterdir()}
    monkeypatch.setattr(tv_class, "train_list", [[n, md5[n]] for n, _ in tv_class.train_list])
    monkeypatch.setattr(tv_class, "test_list", [[n, md5[n]] for n, _ in tv_class.test_list])
    monkeypatch.setattr(tv_class, "meta", {**tv_class.meta, "md5": md5[tv_class.meta["filename"]]})


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1, standing in for the dataset's host."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_cifar100_reads_official_pickles(cifar100_dir: Path) -> None:
    raw = load_raw("cifar100", cifar100_dir, verify_md5=False)
    assert raw.train.images.shape == (300, 3, 32, 32) and raw.train.images.dtype == torch.uint8
    assert raw.test.images.shape == (100, 3, 32, 32)
    assert raw.num_classes == 100 and raw.class_names[7] == "fine_7"
    assert raw.mean == (0.5071, 0.4867, 0.4408) and raw.std == (0.2675, 0.2565, 0.2761)
    # Row-major 3072 bytes are the R plane, then G, then B, as the official format defines.
    import pickle
    with open(cifar100_dir / "cifar-100-python" / "train", "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    assert raw.train.images[5, 1, 0, 0].item() == entry["data"][5, 1024]
    assert raw.train.labels.tolist() == entry["fine_labels"]


def test_cifar10_reads_bytes_keyed_pickles(cifar10_dir: Path) -> None:
    raw = load_raw("cifar10", cifar10_dir, verify_md5=False)
    assert len(raw.train) == 200 and len(raw.test) == 50
    assert raw.class_names[3] == "class_3" and raw.num_classes == 10


@pytest.mark.parametrize("damaged", ["train", "test", "meta"])
def test_each_file_is_md5_checked(cifar100_dir: Path, monkeypatch: pytest.MonkeyPatch, damaged: str) -> None:
    """With every other file official, one changed byte in any of the three files is reported, by name."""
    folder = cifar100_dir / "cifar-100-python"
    official_sums_of(folder, monkeypatch, CIFAR100)
    payload = bytearray((folder / damaged).read_bytes())
    payload[-2] ^= 1
    (folder / damaged).write_bytes(bytes(payload))
    with pytest.raises(UserError, match=rf"cifar-100-python/{damaged} is corrupt: md5 \w+ differs from the official"):
        load_raw("cifar100", cifar100_dir, verify_md5=True)


def test_md5_mismatch_is_reported_as_corrupt(cifar100_dir: Path) -> None:
    with pytest.raises(UserError, match=r"cifar-100-python/train is corrupt: md5 \w+ differs from the official "
                                        r"16019d7e3df5f24257cddd939b257f8d"):
        load_raw("cifar100", cifar100_dir, verify_md5=True)


def test_matching_md5_passes(cifar100_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    official_sums_of(cifar100_dir / "cifar-100-python", monkeypatch, CIFAR100)
    assert len(load_raw("cifar100", cifar100_dir, verify_md5=True).train) == 300


def test_missing_files_are_each_named_with_what_to_do(cifar100_dir: Path) -> None:
    folder = cifar100_dir / "cifar-100-python"
    (folder / "test").unlink()
    (folder / "meta").unlink()
    with pytest.raises(UserError) as refused:
        load_raw("cifar100", cifar100_dir)
    assert str(refused.value) == (f"cifar100 files not found: {folder} lacks test, meta. Put the official "
                                  f"'cifar-100-python' folder in {cifar100_dir}, or pass --download")


def test_a_corrupt_file_says_how_to_recover(cifar100_dir: Path) -> None:
    with pytest.raises(UserError) as refused:
        load_raw("cifar100", cifar100_dir, verify_md5=True)
    assert str(refused.value).endswith(" differs from the official 16019d7e3df5f24257cddd939b257f8d; download it "
                                       "again, or pass --no-verify to skip the check")


def test_missing_files_say_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=f"{tmp_path}/cifar-10-batches-py lacks data_batch_1.*pass --download"):
        load_raw("cifar10", tmp_path)


def test_not_a_pickle_is_a_user_error(cifar100_dir: Path) -> None:
    (cifar100_dir / "cifar-100-python" / "test").write_bytes(b"garbage")
    with pytest.raises(UserError, match="is not a CIFAR pickle file"):
        load_raw("cifar100", cifar100_dir, verify_md5=False)


@pytest.mark.parametrize("entry, message", [
    ({"data": np.zeros((2, 3072), np.uint8)}, "lacks the 'fine_labels' or 'data' entry of a CIFAR batch"),
    ({"fine_labels": [0, 1]}, "lacks the 'fine_labels' or 'data' entry of a CIFAR batch"),
    ({"data": np.zeros((2, 3000), np.uint8), "fine_labels": [0, 1]}, ": 'data' must be N x 3072 with one label per row"),
    ({"data": np.zeros((2, 3, 1024), np.uint8), "fine_labels": [0, 1]},
     ": 'data' must be N x 3072 with one label per row"),
    ({"data": np.zeros((2, 3072), np.uint8), "fine_labels": [0, 1, 2]},
     ": 'data' must be N x 3072 with one label per row"),
])
def test_a_batch_file_of_the_wrong_shape_is_named(cifar100_dir: Path, entry: dict, message: str) -> None:
    write_pickle(cifar100_dir / "cifar-100-python" / "test", entry)
    with pytest.raises(UserError) as refused:
        load_raw("cifar100", cifar100_dir, verify_md5=False)
    assert str(refused.value) == f"{cifar100_dir}/cifar-100-python/test{'' if message[0] == ':' else ' '}{message}"


def test_a_batch_of_plain_lists_and_narrow_labels_loads_as_uint8_images_and_int64_labels(cifar100_dir: Path) -> None:
    rows = [[(i * 7 + j) % 256 for j in range(3072)] for i in range(4)]
    write_pickle(cifar100_dir / "cifar-100-python" / "test", {"data": rows,
                                                               "fine_labels": np.array([3, 1, 4, 1], np.int32)})
    raw = load_raw("cifar100", cifar100_dir, verify_md5=False)
    assert raw.test.images.dtype == torch.uint8 and raw.test.labels.dtype == torch.int64
    assert raw.test.images.shape == (4, 3, 32, 32) and raw.test.labels.tolist() == [3, 1, 4, 1]
    assert raw.test.images[1, 0, 0, :3].tolist() == [7, 8, 9]


@pytest.mark.parametrize("split, labels, message", [
    ("train", lambda n: [100] + [0] * (n - 1), "cifar100 train labels fall outside the 100 classes in meta"),
    ("test", lambda n: [-1] + [0] * (n - 1), "cifar100 test labels fall outside the 100 classes in meta"),
])
def test_labels_outside_the_meta_classes_are_refused(cifar100_dir: Path, split, labels, message) -> None:
    path = cifar100_dir / "cifar-100-python" / split
    with open(path, "rb") as handle:
        entry = pickle.load(handle, encoding="latin1")
    write_pickle(path, {**entry, "fine_labels": labels(len(entry["fine_labels"]))})
    with pytest.raises(UserError) as refused:
        load_raw("cifar100", cifar100_dir, verify_md5=False)
    assert str(refused.value) == message
    write_pickle(path, {**entry, "fine_labels": [99] + [0] * (len(entry["fine_labels"]) - 1)})
    assert load_raw("cifar100", cifar100_dir, verify_md5=False).num_classes == 100, "the last class is inside"


def test_a_meta_file_without_the_class_names_is_refused(cifar100_dir: Path) -> None:
    write_pickle(cifar100_dir / "cifar-100-python" / "meta", {"coarse_label_names": ["a"]})
    with pytest.raises(UserError) as refused:
        load_raw("cifar100", cifar100_dir, verify_md5=False)
    assert str(refused.value) == f"{cifar100_dir}/cifar-100-python/meta lacks 'fine_label_names'"


def test_download_is_asked_only_when_a_file_is_missing(cifar100_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CIFAR100, "url", "http://127.0.0.1:9/unreachable.tar.gz")
    assert len(load_raw("cifar100", cifar100_dir, download=True, verify_md5=False).train) == 300
    (cifar100_dir / "cifar-100-python" / "meta").unlink()
    with pytest.raises(UserError, match="^could not download cifar100 into"):
        load_raw("cifar100", cifar100_dir, download=True, verify_md5=False)


def test_the_fingerprint_is_the_official_sums_when_checked_and_the_contents_otherwise(
        cifar100_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from distill.data import fingerprints

    official_sums_of(cifar100_dir / "cifar-100-python", monkeypatch, CIFAR100)
    checked = load_raw("cifar100", cifar100_dir, verify_md5=True).fingerprint
    sums = [md5 for _, md5 in [*CIFAR100.train_list, *CIFAR100.test_list, (None, CIFAR100.meta["md5"])]]
    assert checked == fingerprints.of_parts("cifar100", sums)
    unchecked_raw = load_raw("cifar100", cifar100_dir, verify_md5=False)
    unchecked = unchecked_raw.fingerprint
    assert unchecked_raw.name == "cifar100" and unchecked != checked
    folder = cifar100_dir / "cifar-100-python"
    assert unchecked == fingerprints.of_parts("cifar100", fingerprints.of_file_contents(
        folder / name for name in ("train", "test", "meta")))
    assert load_raw("cifar10", make_cifar10(cifar100_dir).parent, verify_md5=False).fingerprint != unchecked


def test_a_pickle_of_something_else_than_a_dict_is_a_user_error(cifar100_dir: Path) -> None:
    write_pickle(cifar100_dir / "cifar-100-python" / "test", [1, 2, 3])
    with pytest.raises(UserError) as refused:
        load_raw("cifar100", cifar100_dir, verify_md5=False)
    assert str(refused.value) == (f"{cifar100_dir}/cifar-100-python/test is not a CIFAR pickle file: it holds a list, "
                                  "not a dict")


def test_download_goes_through_torchvision(
    tmp_path: Path, http_root: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """torchvision fetches the archive over HTTP, checks its md5 and unpacks it; then the files load."""
    root, base_url = http_root
    folder = make_cifar100(tmp_path / "src")
    archive = root / "cifar-100-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-100-python")
    official_sums_of(folder, monkeypatch, CIFAR100)
    monkeypatch.setattr(CIFAR100, "url", f"{base_url}/cifar-100-python.tar.gz")
    monkeypatch.setattr(CIFAR100, "tgz_md5", calculate_md5(str(archive)))
    raw = load_raw("cifar100", tmp_path / "data", download=True)
    assert len(raw.train) == 300 and (tmp_path / "data" / "cifar-100-python" / "meta").is_file()


def test_failed_download_is_one_clear_error(
    tmp_path: Path, http_root: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CIFAR10, "url", f"{http_root[1]}/absent.tar.gz")
    with pytest.raises(UserError, match="could not download cifar10 into .*Put the official 'cifar-10-batches-py'"):
        load_raw("cifar10", tmp_path / "data", download=True)


def test_unknown_dataset() -> None:
    with pytest.raises(UserError, match="unknown dataset 'imagenet21k'; choose one of: cifar100, cifar10, digits"):
        load_raw("imagenet21k")


def test_digits_is_real_offline_data() -> None:
    raw = load_raw("digits")
    assert len(raw.train) + len(raw.test) == 1797 and len(raw.test) == 360
    assert raw.train.images.shape[1:] == (3, 32, 32) and raw.num_classes == 10
    assert raw.train.images.max() == 255 and raw.train.images.min() == 0
    assert torch.equal(raw.test.labels, load_raw("digits").test.labels), "the test set is fixed"
    assert raw.test.labels.bincount().min() >= 35, "the test split is stratified"


def test_validation_split_is_stratified_seeded_and_disjoint(cifar100_dir: Path) -> None:
    raw = load_raw("digits")
    splits = make_splits(raw, val_size=180, seed=3)
    assert len(splits.val) == 180 and len(splits.train) == len(raw.train) - 180
    counts = splits.val.labels.bincount(minlength=10)
    assert counts.min() >= 17 and counts.max() <= 19
    again = make_splits(raw, val_size=180, seed=3)
    other = make_splits(raw, val_size=180, seed=4)
    assert torch.equal(again.val.images, splits.val.images)
    assert not torch.equal(other.val.images, splits.val.images)
    # Disjoint and complete: together the two parts are the official train set, image for image.
    both = torch.cat([splits.train.images, splits.val.images]).flatten(1)
    assert torch.unique(both, dim=0).shape[0] == torch.unique(raw.train.images.flatten(1), dim=0).shape[0]
    assert len(both) == len(raw.train)
    cifar = load_splits(DataConfig(dataset="cifar100", data_dir=str(cifar100_dir), verify_md5=False, val_size=100))
    assert len(cifar.val) == 100 and len(cifar.test) == 100


def test_default_validation_sizes(cifar100_dir: Path) -> None:
    assert len(load_splits(DataConfig(dataset="digits")).val) == 180
    with pytest.raises(UserError, match="validation size 5000 must lie between"):
        load_splits(DataConfig(dataset="cifar100", data_dir=str(cifar100_dir), verify_md5=False))


def test_few_shot_stratified_and_first_n() -> None:
    raw = load_raw("digits")
    strat = make_splits(raw, 180, 0, few_shot_fraction=0.1)
    assert len(strat.student_train) == round(0.1 * len(strat.train))
    assert strat.student_train.labels.bincount(minlength=10).min() >= 11
    assert len(strat.train) == len(raw.train) - 180, "the teacher keeps all of train"
    first = make_splits(raw, 180, 0, few_shot_fraction=0.05, few_shot_mode="first")
    n = round(0.05 * len(first.train))
    assert torch.equal(first.student_train.images, first.train.images[:n])


@pytest.mark.parametrize("kwargs, message", [
    ({"few_shot_fraction": 0.0}, "few-shot fraction must be in (0, 1], got 0.0"),
    ({"few_shot_fraction": 1.5}, "few-shot fraction must be in (0, 1], got 1.5"),
    ({"few_shot_fraction": 0.001}, "few-shot fraction 0.001 keeps 1 of 1257 images; a stratified sample needs between "
                                   "10 and 1247 (or use --few-shot-mode first)"),
    ({"few_shot_fraction": 0.5, "few_shot_mode": "random"}, "unknown few-shot mode 'random'; choose 'stratified' or "
                                                            "'first'"),
    ({"zero_shot_classes": (3, 12)}, "zero-shot classes [12] are outside 0..9"),
    ({"zero_shot_classes": (10, -1)}, "zero-shot classes [10, -1] are outside 0..9"),
    ({"zero_shot_classes": tuple(range(10))}, "zero-shot must leave the student at least one class"),
    ({"zero_shot_classes": (*range(10), *range(9))}, "zero-shot must leave the student at least one class"),
    ({"few_shot_fraction": 1253 / 1257}, "few-shot fraction 0.9968178202068417 keeps 1253 of 1257 images; a stratified "
                                         "sample needs between 10 and 1247 (or use --few-shot-mode first)"),
    ({"val_size": -1}, "validation size must be >= 0, got -1"),
    ({"val_size": 9}, "validation size 9 must lie between 10 and 1427 for 1437 training images in 10 classes"),
    ({"val_size": 1428}, "validation size 1428 must lie between 10 and 1427 for 1437 training images in 10 classes"),
])
def test_bad_split_options(kwargs: dict, message: str) -> None:
    with pytest.raises(UserError) as refused:
        make_splits(load_raw("digits"), **{"val_size": 180, "seed": 0, **kwargs})
    assert str(refused.value) == message


def test_the_split_options_boundaries_that_are_allowed() -> None:
    raw = load_raw("digits")
    half = [make_splits(raw, 180, seed, few_shot_fraction=0.5) for seed in (0, 0, 1)]
    assert torch.equal(half[0].student_train.images, half[1].student_train.images), "seeded"
    assert not torch.equal(half[0].student_train.images, half[2].student_train.images)
    assert (half[0].name, half[0].mean, half[0].std) == (raw.name, raw.mean, raw.std)
    for val_size in (10, 1427, 0):
        assert len(make_splits(raw, val_size, 0).val) == val_size
    few = make_splits(raw, 180, 0, few_shot_fraction=10 / 1257)
    assert len(few.student_train) == 10 and set(few.student_train.labels.tolist()) == set(range(10))
    assert len(make_splits(raw, 180, 0, few_shot_fraction=1247 / 1257).student_train) == 1247
    nine = make_splits(raw, 180, 0, zero_shot_classes=tuple(range(9)))
    assert set(nine.student_train.labels.tolist()) == {9} and nine.omitted_classes == tuple(range(9))


def test_zero_shot_removes_classes_from_the_student_only() -> None:
    splits = make_splits(load_raw("digits"), 180, 0, few_shot_fraction=0.5, zero_shot_classes=(7, 2))
    assert splits.omitted_classes == (2, 7)
    assert not torch.isin(splits.student_train.labels, torch.tensor([2, 7])).any()
    for part in (splits.train, splits.val, splits.test):
        assert torch.isin(part.labels, torch.tensor([2, 7])).any()


def test_per_class_accuracy_for_omitted_classes() -> None:
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    preds = torch.tensor([0, 1, 1, 1, 0, 2])
    assert per_class_accuracy(preds, labels, [1, 0, 5]) == {1: pytest.approx(2 / 3), 0: 0.5}
    logits = torch.nn.functional.one_hot(preds, 3).float()
    assert accuracy(logits, labels) == pytest.approx(4 / 6)


def test_cli_bad_data_inputs(tmp_path: Path, capsys) -> None:
    from distill.data.__main__ import main

    assert_one_line_error(run_in_process(main, "info", "--dataset", "svhn", capsys=capsys), "unknown dataset 'svhn'")
    assert_one_line_error(run_in_process(main, "info", "--data-dir", tmp_path, capsys=capsys),
                          "cifar100 files not found", "--download")
    make_cifar100(tmp_path)
    assert_one_line_error(run_in_process(main, "info", "--data-dir", tmp_path, capsys=capsys), "is corrupt: md5")
    ok = run_module("distill.data", "info", "--data-dir", str(tmp_path), "--no-verify", "--val-size", "100")
    assert ok.returncode == 0 and "val      100 images" in ok.stdout


def test_a_class_too_small_to_stratify_is_a_user_error() -> None:
    from distill.data import stratified_split
    with pytest.raises(UserError) as refused:
        stratified_split(torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3]), held_out=4, seed=0)
    assert str(refused.value).startswith("cannot split 10 images by class: The least populated classes in y have "
                                         "only 1 member")
