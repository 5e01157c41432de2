"""The KD search: temperature T and the KD weight alpha, with the CE weight gamma = 1 - alpha."""
from __future__ import annotations

from distill.losses import KDConfig
from distill.settings import CE_WEIGHT_KEY, setting_key
from spaces.ranges import Range

TEMPERATURE, ALPHA = setting_key("kd", "temperature"), setting_key("kd", "alpha")
DEFAULT_TEMPERATURE_RANGE = Range(1.0, 10.0)
DEFAULT_ALPHA_RANGE = Range(0.1, 1.0)
KNOWN_GOOD = {TEMPERATURE: KDConfig().temperature, ALPHA: KDConfig().alpha}  # Hinton's T 4, alpha 0.9 (RepDistiller)


def suggest_kd(trial, temperature: Range, alpha: Range) -> dict:
    """Sample T and alpha; return the CE weight 1 - alpha as a constant, so CE and KD stay a convex mix."""
    temperature.suggest(trial, TEMPERATURE)
    return {CE_WEIGHT_KEY: round(1.0 - alpha.suggest(trial, ALPHA), 10)}


def kd_space(trial, temperature: Range = DEFAULT_TEMPERATURE_RANGE, alpha: Range = DEFAULT_ALPHA_RANGE) -> dict:
    """T uniform over `temperature`, alpha uniform over `alpha`."""
    return suggest_kd(trial, temperature, alpha)


def known_good() -> list[dict]:
    return [dict(KNOWN_GOOD)]
