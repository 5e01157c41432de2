"""Datasets (CIFAR-100, CIFAR-10, bundled digits), honest splits and the device-resident batch loader."""
from __future__ import annotations

from pathlib import Path

from distill.config import DataConfig
from distill.data import cifar, digits  # noqa: F401  (registration)
from distill.data.base import DATASETS, ImageSet, RawDataset
from distill.data.loader import DeviceLoader, Normalizer, random_crop_flip
from distill.data.splits import DataSplits, drop_classes, few_shot, make_splits, stratified_split


def load_raw(name: str, data_dir: str | Path = "./data", download: bool = False, verify_md5: bool = True) -> RawDataset:
    """The registered dataset `name` as its files define it (official train and test)."""
    return DATASETS.get(name)(Path(data_dir).expanduser(), download=download, verify_md5=verify_md5)


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
    "DataConfig", "DataSplits", "DeviceLoader", "ImageSet", "Normalizer", "RawDataset",
    "dataset_names", "drop_classes", "few_shot", "load_raw", "load_splits", "make_splits",
    "random_crop_flip", "stratified_split",
]
