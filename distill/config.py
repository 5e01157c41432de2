"""Typed configuration with every default in one place; command lines and trainables override fields."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FewShotMode = Literal["stratified", "first"]


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, where its files are, and how train is split for honest tuning."""

    dataset: str = "cifar100"
    data_dir: str = "./data"
    download: bool = False
    verify_md5: bool = True
    val_size: int | None = None  # None: the dataset's default (5,000 for CIFAR)
    split_seed: int = 0
    few_shot_fraction: float = 1.0  # fraction of train the student sees
    few_shot_mode: FewShotMode = "stratified"  # "first": the MCMI paper's first-N protocol
    zero_shot_classes: tuple[int, ...] = field(default_factory=tuple)  # removed from the student's data
