"""Datasets (CIFAR-100, CIFAR-10, bundled digits, generated sets, ImageFolder trees), honest splits, and the
batch loaders: device-resident for sets in memory, streamed from files for ImageFolder trees."""
from __future__ import annotations

import inspect
from pathlib import Path

from distill.config import DataConfig
from distill.data import cifar, digits, synthetic, imagefolder  # noqa: F401  (registration)
from distill.data.base import DATASETS, ImageSet, RawDataset
from distill.errors import UserError
from distill.data.loader import BatchSpec, DeviceLoader, Loader, Normalizer, random_crop_flip
from distill.data.splits import DataSplits, drop_classes, few_shot, make_splits, stratified_split


DATASET_HELP = ("cifar100, cifar10, digits (bundled, offline), synthetic-bcpd[:classes=10,dim=8,separation=3,"
                "train=5000,test=1000,seed=0] (generated, with its true posterior), or imagefolder[:size=224] / "
                "imagenet (--data-dir holding train/CLASS/ and val/CLASS/, streamed from disk)")


def dataset_parameters(name: str) -> tuple[str, dict[str, str]]:
    """'synthetic-bcpd:classes=10,dim=8' -> ('synthetic-bcpd', {'classes': '10', 'dim': '8'})."""
    base, _, spec = name.partition(":")
    options = {}
    for item in filter(None, spec.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"dataset {name!r}: parameters are key=value pairs after ':', comma-separated")
        options[key.strip()] = value.strip()
    return base, options


def load_raw(name: str, data_dir: str | Path = "./data", download: bool = False, verify_md5: bool = True) -> RawDataset:
    """The registered dataset `name` as its files define it (official train and test); a generated
    dataset takes its parameters in the name (`synthetic-bcpd:classes=10,separation=2`)."""
    base, options = dataset_parameters(name)
    loader = DATASETS.get(base)
    if Path(data_dir).expanduser().exists() and not Path(data_dir).expanduser().is_dir():
        raise UserError(f"--data-dir {data_dir} is a file, not a folder: name the folder that holds the dataset")
    takes_options = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(loader).parameters.values())
    if options and not takes_options:
        raise UserError(f"dataset {base} takes no parameters, got {name!r}")
    return loader(Path(data_dir).expanduser(), download=download, verify_md5=verify_md5, **options)


def load_splits(config: DataConfig) -> DataSplits:
    """Read the dataset of `config` and split it for tuning (validation), few-shot and zero-shot."""
    raw = load_raw(config.dataset, config.data_dir, config.download, config.verify_md5)
    return make_splits(
        raw, config.val_size, config.split_seed,
        config.few_shot_fraction, config.few_shot_mode, tuple(config.zero_shot_classes),
    )


def dataset_names() -> list[str]:
    return DATASETS.names()


__all__ = [
    "DATASET_HELP", "BatchSpec", "DataConfig", "DataSplits", "DeviceLoader", "ImageSet", "Loader", "Normalizer",
    "RawDataset",
    "dataset_names", "drop_classes", "few_shot", "load_raw", "load_splits", "make_splits",
    "random_crop_flip", "stratified_split",
]
