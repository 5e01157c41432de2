"""The KD search: temperature T and the KD weight alpha, with the CE weight gamma = 1 - alpha."""
from __future__ import annotations

from spaces.ranges import Range

DEFAULT_TEMPERATURE_RANGE = Range(1.0, 10.0)
DEFAULT_ALPHA_RANGE = Range(0.1, 1.0)
KNOWN_GOOD = {"temperature": 4.0, "alpha": 0.9}  # Hinton's T = 4 with alpha 0.9, gamma 0.1 (RepDistiller)


def suggest_kd(trial, temperature: Range, alpha: Range) -> dict:
    """Sample T and alpha; return gamma = 1 - alpha as a constant, so CE and KD stay a convex mix."""
    temperature.suggest(trial, "temperature")
    return {"gamma": round(1.0 - alpha.suggest(trial, "alpha"), 10)}


def kd_space(trial, temperature: Range = DEFAULT_TEMPERATURE_RANGE, alpha: Range = DEFAULT_ALPHA_RANGE) -> dict:
    """T uniform over `temperature`, alpha uniform over `alpha`."""
    return suggest_kd(trial, temperature, alpha)


def known_good() -> list[dict]:
    return [dict(KNOWN_GOOD)]
