"""A trial's sampled config applied to typed job templates: the one place search keys meet job fields."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from distill.config import KDConfig, MCMIJob, MIMKDConfig, RuntimeConfig, StudentJob

NO_LAYERS = "none"
CRITIC_FIELDS = ("depth", "width", "embed")  # sampled per critic type as "<critic>_<field>"
NO_CRITIC = "none"  # config["critic"] == "none": KD only, no MI terms (the MIMKD search's baseline)
# Keys a confirmation run adds to its configuration's values:
SEED_KEY = "seed"  # the run's seed: initialisation and data order, paired across configurations
CONFIRM_KEY = "confirm"  # which confirmed configuration the run belongs to (a label, ignored by the jobs)
FINE_TUNE_KEY = "fine_tune"  # False: the lambda trial distils from the untouched MLL teacher


def decode_layers(encoded: str) -> tuple[str, ...]:
    """'-3,-2' -> ('-3', '-2'); 'none' -> (): the string form a categorical search parameter needs."""
    return () if encoded in ("", NO_LAYERS) else tuple(part.strip() for part in encoded.split(","))


def encode_layers(layers: tuple[str, ...]) -> str:
    return ",".join(layers) if layers else NO_LAYERS


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


def mimkd_for(base: MIMKDConfig | None, config: Mapping[str, Any]) -> MIMKDConfig | None:
    """The MIMKD settings of a trial: `base` with every sampled critic, layer and weight key applied."""
    if (base is None and "critic" not in config) or config.get("critic") == NO_CRITIC:
        return None
    mimkd = base or MIMKDConfig()
    critic = str(config.get("critic", mimkd.critic))
    changes: dict[str, Any] = {"critic": critic}
    for name in CRITIC_FIELDS:
        key = f"{critic}_{name}"
        if key in config:
            changes[f"critic_{name}"] = int(config[key])
    for name in ("beta_global", "beta_local", "critic_lr_mult"):
        if name in config:
            changes[name] = float(config[name])
    if "local_layers" in config:
        changes["local_layers"] = decode_layers(str(config["local_layers"]))
    return replace(mimkd, **changes)


def student_job_for(job: StudentJob, config: Mapping[str, Any]) -> StudentJob:
    """`job` with the trial's KD weights and temperature, its MIMKD settings when searched, and its seed."""
    kd = KDConfig(
        gamma=float(config.get("gamma", job.kd.gamma)),
        alpha=float(config.get("alpha", job.kd.alpha)),
        temperature=float(config.get("temperature", job.kd.temperature)),
    )
    return replace(job, kd=kd, mimkd=mimkd_for(job.mimkd, config), runtime=seeded(job.runtime, config))
