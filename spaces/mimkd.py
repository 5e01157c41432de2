"""The MIMKD search: critic type (with its own depth and width), local-critic layers, MI weights, T, alpha."""
from __future__ import annotations

from distill.losses import MIMKDConfig
from distill.settings import setting_key
from spaces.kd_temperature import (
    DEFAULT_ALPHA_RANGE,
    DEFAULT_TEMPERATURE_RANGE,
    KNOWN_GOOD,
    suggest_kd,
)
from spaces.ranges import Range

CRITICS = ("separable", "concat")
# Local critics on subsets of the last feature maps ("-2" is the last map, "-4" the first stage's).
LAYER_SUBSETS = ("none", "-2", "-3,-2", "-4,-3,-2")
DEFAULT_BETA_RANGE = Range(0.1, 10.0, log=True)
CRITIC, LAYERS = setting_key("mimkd", "critic"), setting_key("mimkd", "local_layers")
BETA_GLOBAL, BETA_LOCAL = setting_key("mimkd", "beta_global"), setting_key("mimkd", "beta_local")


def critic_key(critic: str, field: str) -> str:
    """A critic type's own conditional parameter: 'mimkd.concat_width'."""
    return setting_key("mimkd", f"{critic}_{field}")


def mimkd_space(
    trial, beta: Range = DEFAULT_BETA_RANGE, temperature: Range = DEFAULT_TEMPERATURE_RANGE,
    alpha: Range = DEFAULT_ALPHA_RANGE,
) -> dict:
    """Critic depth/width/embedding are conditional on the critic; beta_local only when local critics exist."""
    critic = trial.suggest_categorical(CRITIC, CRITICS)
    trial.suggest_int(critic_key(critic, "depth"), 1, 3)
    trial.suggest_int(critic_key(critic, "width"), 128, 1024, log=True)
    if critic == "separable":
        trial.suggest_int(critic_key(critic, "embed"), 32, 256, log=True)
    layers = trial.suggest_categorical(LAYERS, LAYER_SUBSETS)
    beta.suggest(trial, BETA_GLOBAL)
    if layers != "none":
        beta.suggest(trial, BETA_LOCAL)
    return suggest_kd(trial, temperature, alpha)


def known_good() -> list[dict]:
    """MIMKD's defaults (MIMKDConfig): its critic, a local critic on the last map, unit weights; KD's T and alpha."""
    mim = MIMKDConfig()
    return [{CRITIC: mim.critic, critic_key(mim.critic, "depth"): mim.critic_depth,
             critic_key(mim.critic, "width"): mim.critic_width, critic_key(mim.critic, "embed"): mim.critic_embed,
             LAYERS: ",".join(mim.local_layers), BETA_GLOBAL: mim.beta_global, BETA_LOCAL: mim.beta_local,
             **KNOWN_GOOD}]
