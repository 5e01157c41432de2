"""The MIMKD search: critic type (with its own depth and width), local-critic layers, MI weights, T, alpha."""
from __future__ import annotations

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


def mimkd_space(
    trial, beta: Range = DEFAULT_BETA_RANGE, temperature: Range = DEFAULT_TEMPERATURE_RANGE,
    alpha: Range = DEFAULT_ALPHA_RANGE,
) -> dict:
    """Critic depth/width/embedding are conditional on the critic; beta_local only when local critics exist."""
    critic = trial.suggest_categorical("critic", CRITICS)
    trial.suggest_int(f"{critic}_depth", 1, 3)
    trial.suggest_int(f"{critic}_width", 128, 1024, log=True)
    if critic == "separable":
        trial.suggest_int("separable_embed", 32, 256, log=True)
    layers = trial.suggest_categorical("local_layers", LAYER_SUBSETS)
    beta.suggest(trial, "beta_global")
    if layers != "none":
        beta.suggest(trial, "beta_local")
    return suggest_kd(trial, temperature, alpha)


def known_good() -> list[dict]:
    """MIMKD's defaults here: a one-layer separable critic, a local critic on the last map, unit weights."""
    return [{"critic": "separable", "separable_depth": 1, "separable_width": 512, "separable_embed": 128,
             "local_layers": "-2", "beta_global": 1.0, "beta_local": 1.0, **KNOWN_GOOD}]
