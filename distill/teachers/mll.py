"""`mll`: maximum log-likelihood, plain cross-entropy: the standard teacher every KD paper starts from."""
from __future__ import annotations

from dataclasses import dataclass

from distill.objectives import CrossEntropyObjective, Objective
from distill.teachers.base import TeacherContext, TeacherObjectiveConfig, register_teacher_objective


@dataclass(frozen=True)
class MLLConfig(TeacherObjectiveConfig):
    """Cross-entropy on the labels; nothing to set."""


@register_teacher_objective("mll")
class MLL:
    """CE: the `ce` term."""

    Config = MLLConfig

    @staticmethod
    def build(config: MLLConfig, context: TeacherContext) -> Objective:
        return CrossEntropyObjective(context.model)
