"""CIFAR-10 and CIFAR-100 from the official python-pickle folders, md5-checked, downloaded by torchvision."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from distill.data import fingerprints
from distill.data.base import DATASETS, ImageSet, RawDataset
from distill.errors import UserError
from distill.safe_pickle import load_plain_pickle


@dataclass(frozen=True)
class CifarLayout:
    """Where a CIFAR variant keeps its arrays and labels; file names and md5s come from torchvision."""

    name: str
    torchvision_name: str  # imported on first use: torchvision takes ~1.5 s to import
    label_key: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def torchvision_class(self) -> type:
        return getattr(importlib.import_module("torchvision.datasets"), self.torchvision_name)

    @property
    def folder(self) -> str:
        return self.torchvision_class.base_folder

    @property
    def files(self) -> list[tuple[str, str]]:
        """(file name, official md5) for every file, train batches first, meta last."""
        tv = self.torchvision_class
        return [*map(tuple, tv.train_list), *map(tuple, tv.test_list), (tv.meta["filename"], tv.meta["md5"])]


CIFAR100_LAYOUT = CifarLayout(
    "cifar100", "CIFAR100", "fine_labels", mean=(0.5071, 0.4867, 0.4408), std=(0.2675, 0.2565, 0.2761)
)
CIFAR10_LAYOUT = CifarLayout(
    "cifar10", "CIFAR10", "labels", mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)
)
CIFAR_VAL_SIZE = 5000


def download(layout: CifarLayout, data_dir: Path) -> None:
    """Fetch and unpack the official archive into `data_dir` through torchvision."""
    try:
        layout.torchvision_class(str(data_dir), train=True, download=True)
    except Exception as err:  # network and archive errors come in many types
        raise UserError(
            f"could not download {layout.name} into {data_dir}: {err}. Put the official "
            f"'{layout.folder}' folder (from {layout.torchvision_class.url}) there instead"
        ) from None


def check_files(layout: CifarLayout, data_dir: Path, verify_md5: bool) -> Path:
    """The dataset folder, after checking that every file is there and (optionally) its md5."""
    folder = data_dir / layout.folder
    missing = [name for name, _ in layout.files if not (folder / name).is_file()]
    if missing:
        raise UserError(
            f"{layout.name} files not found: {folder} lacks {', '.join(missing)}. Put the official "
            f"'{layout.folder}' folder in {data_dir}, or pass --download"
        )
    if verify_md5:
        from torchvision.datasets.utils import calculate_md5

        for name, expected in layout.files:
            actual = calculate_md5(str(folder / name))
            if actual != expected:
                raise UserError(
                    f"{folder / name} is corrupt: md5 {actual} differs from the official {expected}; "
                    "download it again, or pass --no-verify to skip the check"
                )
    return folder


def read_pickle(path: Path) -> dict:
    """One official batch file (a latin1-encoded Python pickle of a dict), read as plain data only: a file that asks
    to call anything else is refused before it runs (the md5 check may be off for custom data)."""
    entry = load_plain_pickle(path, "a CIFAR pickle file")
    if not isinstance(entry, dict):
        raise UserError(f"{path} is not a CIFAR pickle file: it holds a {type(entry).__name__}, not a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}


def read_batches(folder: Path, names: list[str], label_key: str) -> ImageSet:
    """Concatenate batch files into one uint8 [N, 3, 32, 32] set."""
    arrays, labels = [], []
    for name in names:
        entry = read_pickle(folder / name)
        if "data" not in entry or label_key not in entry:
            raise UserError(f"{folder / name} lacks the '{label_key}' or 'data' entry of a CIFAR batch")
        data = np.asarray(entry["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(entry[label_key]) != data.shape[0]:
            raise UserError(f"{folder / name}: 'data' must be N x 3072 with one label per row")
        arrays.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(entry[label_key], dtype=np.int64))
    return ImageSet(torch.from_numpy(np.concatenate(arrays)), torch.from_numpy(np.concatenate(labels)))


def load_cifar(layout: CifarLayout, data_dir: Path, download_missing: bool, verify_md5: bool) -> RawDataset:
    """Read a CIFAR variant, downloading it first when asked and it is not already there."""
    folder = data_dir / layout.folder
    if download_missing and not all((folder / name).is_file() for name, _ in layout.files):
        download(layout, data_dir)
    check_files(layout, data_dir, verify_md5)
    tv = layout.torchvision_class
    train = read_batches(folder, [name for name, _ in tv.train_list], layout.label_key)
    test = read_batches(folder, [name for name, _ in tv.test_list], layout.label_key)
    meta = read_pickle(folder / tv.meta["filename"])
    if tv.meta["key"] not in meta:
        raise UserError(f"{folder / tv.meta['filename']} lacks '{tv.meta['key']}'")
    class_names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta[tv.meta["key"]])
    for split, images in (("train", train), ("test", test)):
        if images.labels.min() < 0 or images.labels.max() >= len(class_names):
            raise UserError(f"{layout.name} {split} labels fall outside the {len(class_names)} classes in meta")
    identity = ([md5 for _, md5 in layout.files] if verify_md5  # checked equal to the official md5s above
                else fingerprints.of_file_contents(folder / name for name, _ in layout.files))
    return RawDataset(layout.name, train, test, class_names, layout.mean, layout.std, CIFAR_VAL_SIZE,
                      fingerprints.of_parts(layout.name, identity))


@DATASETS.register("cifar100")
def cifar100(data_dir: Path, download: bool, verify_md5: bool) -> RawDataset:
    """CIFAR-100 with its 100 fine labels."""
    return load_cifar(CIFAR100_LAYOUT, data_dir, download, verify_md5)


@DATASETS.register("cifar10")
def cifar10(data_dir: Path, download: bool, verify_md5: bool) -> RawDataset:
    """CIFAR-10."""
    return load_cifar(CIFAR10_LAYOUT, data_dir, download, verify_md5)
