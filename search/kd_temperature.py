"""Search the KD temperature T and weight alpha (CE weight 1 - alpha) for a fixed MLL teacher.

Each trial distils a student from the cached (or brought) teacher; Optuna samples T and alpha,
T = 4 with alpha = 0.9 first, and ASHA stops weak students early.
Offline demo (2 CPU cores, a few minutes):  python -m search.kd_temperature --preset digits
"""
from __future__ import annotations

import argparse
from functools import partial

import trainables
from distill.losses import KDConfig
from distill.settings import CE_WEIGHT_KEY
from search.definition import Baseline, SearchDefinition, fixed
from search.runner import main_for
from spaces import Range
from spaces.kd_temperature import (
    ALPHA,
    DEFAULT_ALPHA_RANGE,
    DEFAULT_TEMPERATURE_RANGE,
    KNOWN_GOOD,
    TEMPERATURE,
    kd_space,
    known_good,
)
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


DEFINITION = SearchDefinition(
    name="kd_temperature", description=__doc__, add_options=add_kd_options,
    space=lambda args: partial(kd_space, **kd_ranges(args)),
    points=lambda args: [p for p in known_good() if inside(p, ranged(kd_ranges(args)))],
    log_params=frozenset(), trainable=trainables.student, trainable_inputs=student_inputs,
    columns=STUDENT_COLUMNS, plot_metrics=(STUDENT_VAL_ACC,),
    baselines=fixed(Baseline("kd_default", "published KD default (T=4, α=0.9)", PUBLISHED_KD,
                             "Hinton's KD at T = 4 with α 0.9, γ 0.1, the setting RepDistiller and most KD papers "
                             "use")),
    label_names=KD_LABELS, searched=("kd",),
)
main = main_for(DEFINITION)

if __name__ == "__main__":
    raise SystemExit(main())
