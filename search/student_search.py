"""What the searches of a student's settings share (`kd_temperature`, `mimkd`, `distiller`): KD's space with its
range options, the first point of a set of method spaces when it lies in their ranges, the student trainable's
inputs and the final table's columns. Entry points import these from here, not from each other.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from spaces import Range
from spaces.method import MethodSpace, method_spaces
from trainables.metrics import STUDENT_EPOCH, STUDENT_VAL_ACC

STUDENT_COLUMNS = (STUDENT_EPOCH, STUDENT_VAL_ACC)
KD = method_spaces()["kd"]
KD_LABELS = KD.label_names()  # the CE weight is 1 - alpha, so labels leave it out
PUBLISHED_KD = KD.known_good()  # T 4, alpha 0.9, CE 0.1


def add_kd_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("KD search")
    temperature, alpha = KD.ranges["temperature"], KD.ranges["alpha"]
    group.add_argument("--temperature-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       default=[temperature.low, temperature.high],
                       help=f"uniform range of the KD temperature T (default: {temperature.low:g} "
                       f"{temperature.high:g})")
    group.add_argument("--alpha-range", type=float, nargs=2, metavar=("LOW", "HIGH"), default=[alpha.low, alpha.high],
                       help=f"uniform range of the KD weight alpha, within [0, 1]; gamma = 1 - alpha (default: "
                       f"{alpha.low:g} {alpha.high:g})")


def kd_space(args: argparse.Namespace) -> MethodSpace:
    """KD's space over the ranges the options give."""
    return replace(KD, ranges={"temperature": Range(*args.temperature_range).check("--temperature-range",
                                                                                  minimum=1e-6),
                               "alpha": Range(*args.alpha_range).check("--alpha-range", maximum=1.0)})


def inside(point: dict, ranges: dict[str, Range]) -> bool:
    """Whether every ranged value of a known-good point lies in the searched range."""
    return all(r.low <= point[name] <= r.high for name, r in ranges.items() if name in point)


def first_points(spaces: tuple[MethodSpace, ...]) -> list[dict]:
    """The methods' published defaults together, when every ranged value lies in its searched range."""
    point = {key: value for space in spaces for key, value in space.known_good().items()}
    ranges = {space.key(name): r for space in spaces for name, r in space.ranges.items()}
    return [point] if inside(point, ranges) else []


def student_inputs(jobs, splits, weights) -> dict:
    return dict(job=jobs.student, splits=splits, teacher_weights=weights)
