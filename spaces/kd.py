"""KD's knobs: the temperature T and the KD weight α, with the CE weight 1 − α, so CE and KD stay a convex mix
(Hinton's T 4, α 0.9, CE 0.1, as RepDistiller publishes them, first)."""
from distill.settings import CE_WEIGHT_KEY, setting_key
from spaces.method import MethodSpace, register_space
from spaces.ranges import Range

TEMPERATURE, ALPHA = setting_key("kd", "temperature"), setting_key("kd", "alpha")


def convex_ce(values: dict) -> dict:
    """The CE weight 1 − α of a sampled α."""
    return {CE_WEIGHT_KEY: round(1.0 - values[ALPHA], 10)}


SPACE = register_space(MethodSpace("kd", ranges={"temperature": Range(1.0, 10.0), "alpha": Range(0.1, 1.0)},
                                   labels={"temperature": "T", "alpha": "α"}, constants=convex_ce))
