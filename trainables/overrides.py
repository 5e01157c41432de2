"""A trial's sampled config applied to typed job templates: the one place search keys meet job fields.

Student keys are distill.settings' flat names (`distillers`, `ce_weight`, `<distiller>.<field>`), so no
method is named here.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from distill.config import MCMIJob, RuntimeConfig, StudentJob
from distill.settings import CE_WEIGHT_KEY, DISTILLERS_KEY, configure, decode_distillers

# Keys a confirmation run adds to its configuration's values:
SEED_KEY = "seed"  # the run's seed: initialisation and data order, paired across configurations
CONFIRM_KEY = "confirm"  # which confirmed configuration the run belongs to (a label, ignored by the jobs)
FINE_TUNE_KEY = "fine_tune"  # False: the lambda trial distils from the untouched MLL teacher


def seeded(runtime: RuntimeConfig, config: Mapping[str, Any]) -> RuntimeConfig:
    """`runtime` with the run's own seed when the config names one (a confirmation run)."""
    return replace(runtime, seed=int(config[SEED_KEY])) if SEED_KEY in config else runtime


def fine_tunes(config: Mapping[str, Any]) -> bool:
    """Whether a lambda trial fine-tunes its teacher (every search trial does; one baseline does not)."""
    return bool(config.get(FINE_TUNE_KEY, True))


def mcmi_job_for(job: MCMIJob, config: Mapping[str, Any]) -> MCMIJob:
    """`job` with the trial's lam, (when searched) fine-tuning learning rate and (when given) seed."""
    optim = job.recipe()
    if "mcmi_lr" in config:
        optim = replace(optim, lr=float(config["mcmi_lr"]))
    return replace(job, optim=optim, mcmi=replace(job.mcmi, lam=float(config.get("lam", job.mcmi.lam))),
                   runtime=seeded(job.runtime, config))


def student_job_for(job: StudentJob, config: Mapping[str, Any]) -> StudentJob:
    """`job` with the trial's distillers (templates kept, others at their published defaults), their sampled
    fields, its CE weight and its seed."""
    names = decode_distillers(str(config[DISTILLERS_KEY])) if DISTILLERS_KEY in config else tuple(job.distillers)
    ce_weight = float(config[CE_WEIGHT_KEY]) if CE_WEIGHT_KEY in config else job.ce_weight
    return replace(job, distillers=configure(names, config, job.distillers), ce_weight=ce_weight,
                   runtime=seeded(job.runtime, config))
