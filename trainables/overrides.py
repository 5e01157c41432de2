"""A trial's sampled config applied to typed job templates: the one place search keys meet job fields.

Keys are distill.settings' flat names (the student's `distillers`, `ce_weight`, `<distiller>.<field>`; the teacher
stage's `teacher_objective`, `teacher_lr`, `<objective>.<field>`), so no method is named here.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from distill.config import RuntimeConfig, StudentJob, TeacherJob
from distill.settings import (
    CE_WEIGHT_KEY, DISTILLERS_KEY, TEACHER_LR_KEY, configure, configure_teacher, decode_distillers, student_keys,
)

# Keys a confirmation run adds to its configuration's values:
SEED_KEY = "seed"  # the run's seed: initialisation and data order, paired across configurations
CONFIRM_KEY = "confirm"  # which confirmed configuration the run belongs to (a label, ignored by the jobs)
TEACHER_STAGE_KEY = "teacher_stage"  # False: the trial skips its teacher stage and distils from the MLL teacher


def seeded(runtime: RuntimeConfig, config: Mapping[str, Any]) -> RuntimeConfig:
    """`runtime` with the run's own seed when the config names one (a confirmation run)."""
    return replace(runtime, seed=int(config[SEED_KEY])) if SEED_KEY in config else runtime


def trains_teacher(config: Mapping[str, Any]) -> bool:
    """Whether a trial runs its teacher stage (every search trial does; one baseline does not)."""
    return bool(config.get(TEACHER_STAGE_KEY, True))


def teacher_job_for(job: TeacherJob, config: Mapping[str, Any]) -> TeacherJob:
    """`job` with the trial's objective and its fields, (when searched) learning rate, and (when given) seed."""
    optim = job.recipe()
    if TEACHER_LR_KEY in config:
        optim = replace(optim, lr=float(config[TEACHER_LR_KEY]))
    return replace(job, optim=optim, objective=configure_teacher(job.objective, config),
                   runtime=seeded(job.runtime, config))


def student_job_for(job: StudentJob, config: Mapping[str, Any]) -> StudentJob:
    """`job` with the trial's distillers (templates kept, others at their published defaults), their sampled
    fields, its CE weight and its seed."""
    names = decode_distillers(str(config[DISTILLERS_KEY])) if DISTILLERS_KEY in config else tuple(job.distillers)
    ce_weight = float(config[CE_WEIGHT_KEY]) if CE_WEIGHT_KEY in config else job.ce_weight
    return replace(job, distillers=configure(names, student_keys(config), job.distillers), ce_weight=ce_weight,
                   runtime=seeded(job.runtime, config))
