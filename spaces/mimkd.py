"""MIMKD's knobs: the critic type with its depth and width (and, for the separable critic, its embedding), the
local-critic layers, and the MI weights β_g and β_l (β_l only when local critics exist); MIMKD's own defaults
first. A MIMKD search samples KD's space beside it."""
from distill.losses.mimkd import CRITICS
from spaces.method import MethodSpace, register_space
from spaces.ranges import Range

# Local critics on subsets of the last feature maps ("-2" is the last map, "-4" the first stage's).
LAYER_SUBSETS = ("none", "-2", "-3,-2", "-4,-3,-2")
DEFAULT_BETA_RANGE = Range(0.1, 10.0, log=True)

SPACE = register_space(MethodSpace(
    "mimkd",
    ranges={"critic_depth": Range(1, 3, integer=True), "critic_width": Range(128, 1024, log=True, integer=True),
            "critic_embed": Range(32, 256, log=True, integer=True), "beta_global": DEFAULT_BETA_RANGE,
            "beta_local": DEFAULT_BETA_RANGE},
    choices={"critic": tuple(CRITICS.names()), "local_layers": LAYER_SUBSETS},
    conditions={"critic_embed": ("critic", ("separable",)), "beta_local": ("local_layers", LAYER_SUBSETS[1:])},
    labels={"critic": "critic", "local_layers": "layers", "beta_global": "β_g", "beta_local": "β_l"},
))
