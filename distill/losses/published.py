"""Settings a method's reference code publishes for a particular teacher–student pair, where they differ from the
general defaults of its config: facts with their source, used as that pair's default and its search's baseline.

mdistiller (megvii-research/mdistiller at a08d46f, `configs/cifar100/dkd/*.yaml`) sets DKD's β per pair: 8 (its
general default) for resnet32x4 → resnet8x4/ShuffleV1/ShuffleV2, ResNet50 → MobileNetV2 and wrn_40_2 → ShuffleV1;
6 for vgg13 → vgg8/MobileNetV2 and wrn_40_2 → wrn_16_2/wrn_40_1; 2 for resnet56 → resnet20 and resnet110 →
resnet32. No other method's reference code here publishes per-pair values (RepDistiller uses one setting per
method for every pair).
"""
from __future__ import annotations

from collections.abc import Sequence

from distill.losses.base import DistillerConfig
from distill.losses.registry import DISTILLERS

SOURCES = {"dkd": "mdistiller configs/cifar100/dkd/*.yaml (megvii-research/mdistiller @ a08d46f)"}
PER_PAIR: dict[tuple[str, str, str], dict[str, float]] = {  # (distiller, teacher, student) -> published fields
    ("dkd", "resnet56", "resnet20"): {"beta": 2.0},
    ("dkd", "resnet110", "resnet32"): {"beta": 2.0},
    ("dkd", "vgg13", "vgg8"): {"beta": 6.0},
    ("dkd", "vgg13", "MobileNetV2"): {"beta": 6.0},
    ("dkd", "wrn_40_2", "wrn_16_2"): {"beta": 6.0},
    ("dkd", "wrn_40_2", "wrn_40_1"): {"beta": 6.0},
}


def published_config(name: str, teacher: str | None = None, student: str | None = None) -> DistillerConfig:
    """Distiller `name`'s config at what its reference code publishes for the pair (its general defaults where
    the pair has nothing of its own, or no pair is given)."""
    config = DISTILLERS.get(name).Config()
    values = PER_PAIR.get((name, teacher, student))
    return config.with_values(values) if values else config


def published_configs(names: Sequence[str], teacher: str | None, student: str | None) -> dict[str, DistillerConfig]:
    return {name: published_config(name, teacher, student) for name in names}
