"""The teacher-objective interface: what a teacher is trained to minimise, one module per objective.

An objective is a frozen `TeacherObjectiveConfig` (its knobs, their defaults and help) and a builder that turns
it into the engine's `Objective` for the net being trained, registered together with
`@register_teacher_objective("name")`, as distillers are. Its command-line flags (`--<name>-<field>`), search
keys (`<name>.<field>`) and MLflow params follow from the config.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from distill.models.base import FeatureNet
from distill.registry import Registry
from distill.typed_settings import Settings

TEACHER_OBJECTIVES: Registry = Registry("teacher objective")


@dataclass(frozen=True)
class TeacherObjectiveConfig(Settings):
    """Base of every teacher objective's knobs."""

    REGISTRY: ClassVar[Registry] = TEACHER_OBJECTIVES


@dataclass(frozen=True)
class TeacherContext:
    """What an objective may build from: the net it trains (already holding its starting weights), the number of
    classes, and one full-precision pass of that net over the training set (logits, labels), computed on demand
    and summed across the workers of a data-parallel run by whoever needs class statistics."""

    model: FeatureNet
    num_classes: int
    predict_train: Callable[[], tuple[torch.Tensor, torch.Tensor]]


def register_teacher_objective(name: str):
    """Class decorator: adds a teacher objective (a class with `Config` and `build(config, context)`) under `name`."""

    def add(cls: type) -> type:
        if not (hasattr(cls, "Config") and issubclass(cls.Config, TeacherObjectiveConfig) and hasattr(cls, "build")):
            raise TypeError(f"{cls!r} must have a TeacherObjectiveConfig `Config` and a `build(config, context)`")
        return TEACHER_OBJECTIVES.register(name)(cls)

    return add
