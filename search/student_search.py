"""What the searches of a student's settings share (`kd_temperature`, `mimkd`, `distiller`): KD's published
point and its range options, the check that a known-good point lies in the searched ranges, the student
trainable's inputs and the final table's columns. Entry points import these from here, not from each other.
"""
from __future__ import annotations

import argparse

from distill.losses import KDConfig
from distill.settings import CE_WEIGHT_KEY
from spaces import Range
from spaces.kd_temperature import ALPHA, DEFAULT_ALPHA_RANGE, DEFAULT_TEMPERATURE_RANGE, KNOWN_GOOD, TEMPERATURE
from trainables.metrics import STUDENT_EPOCH, STUDENT_VAL_ACC

STUDENT_COLUMNS = (STUDENT_EPOCH, STUDENT_VAL_ACC)
KD_LABELS = {TEMPERATURE: "T", ALPHA: "α"}  # the CE weight is 1 - alpha, so labels leave it out
PUBLISHED_KD = {**KNOWN_GOOD, CE_WEIGHT_KEY: KDConfig.CE_WEIGHT}  # T 4, alpha 0.9, CE 0.1


def add_kd_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("KD search")
    group.add_argument("--temperature-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       default=[DEFAULT_TEMPERATURE_RANGE.low, DEFAULT_TEMPERATURE_RANGE.high],
                       help="uniform range of the KD temperature T (default: 1 10)")
    group.add_argument("--alpha-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       default=[DEFAULT_ALPHA_RANGE.low, DEFAULT_ALPHA_RANGE.high],
                       help="uniform range of the KD weight alpha, within [0, 1]; gamma = 1 - alpha (default: 0.1 1)")


def kd_ranges(args: argparse.Namespace) -> dict[str, Range]:
    return {"temperature": Range(*args.temperature_range).check("--temperature-range", minimum=1e-6),
            "alpha": Range(*args.alpha_range).check("--alpha-range", maximum=1.0)}


def ranged(ranges: dict[str, Range]) -> dict[str, Range]:
    """`kd_ranges` keyed as the space samples them."""
    return {TEMPERATURE: ranges["temperature"], ALPHA: ranges["alpha"]}


def inside(point: dict, ranges: dict[str, Range]) -> bool:
    """Whether every ranged value of a known-good point lies in the searched range."""
    return all(r.low <= point[name] <= r.high for name, r in ranges.items() if name in point)


def student_inputs(jobs, splits, weights) -> dict:
    return dict(job=jobs.student, splits=splits, teacher_weights=weights)
