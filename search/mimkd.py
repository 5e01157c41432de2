"""Search MIMKD: the mutual-information critic (type, depth, width), its layers, the MI weights, T and alpha.

Each trial distils a student from the cached (or brought) MLL teacher with KD plus MIMKD's
Jensen-Shannon MI bounds; Optuna samples the conditional space, MIMKD's defaults first.
Offline demo (2 CPU cores, a few minutes):  python -m search.mimkd --preset digits
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from functools import partial

import trainables
from distill.settings import DISTILLERS_KEY
from search.definition import Baseline, SearchDefinition, fixed
from search.runner import main_for
from search.student_search import (
    KD, KD_LABELS, PUBLISHED_KD, STUDENT_COLUMNS, add_kd_options, first_points, kd_space, student_inputs,
)
from spaces import Range
from spaces.method import joint_space, method_spaces
from spaces.mimkd import DEFAULT_BETA_RANGE
from trainables.metrics import STUDENT_VAL_ACC

MIMKD = method_spaces()["mimkd"]


def add_options(parser: argparse.ArgumentParser) -> None:
    add_kd_options(parser)
    parser.add_argument("--beta-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        default=[DEFAULT_BETA_RANGE.low, DEFAULT_BETA_RANGE.high],
                        help="log-uniform range of the MI weights beta_global and beta_local (default: 0.1 10)")


def spaces_for(args: argparse.Namespace) -> tuple:
    """MIMKD's space with both MI weights over --beta-range, and KD's over its ranges."""
    beta = Range(*args.beta_range, log=True).check("--beta-range")
    return replace(MIMKD, ranges={**MIMKD.ranges, "beta_global": beta, "beta_local": beta}), kd_space(args)


DEFINITION = SearchDefinition(
    name="mimkd", description=__doc__, add_options=add_options,
    space=lambda args: partial(joint_space, spaces=spaces_for(args)),
    points=lambda args: first_points(spaces_for(args)),
    log_params=MIMKD.log_params() | KD.log_params(),
    trainable=trainables.student, trainable_inputs=student_inputs,
    columns=STUDENT_COLUMNS, plot_metrics=(STUDENT_VAL_ACC,),
    baselines=fixed(Baseline("kd_only", "KD-only student (T=4, α=0.9)", {**PUBLISHED_KD, DISTILLERS_KEY: "kd"},
                             "the same student with KD alone at the published T = 4, α 0.9, CE 0.1, no MI terms")),
    label_names={**MIMKD.label_names(), **KD_LABELS},
    distillers=("kd", "mimkd"), searched=("kd", "mimkd"),
)
main = main_for(DEFINITION)

if __name__ == "__main__":
    raise SystemExit(main())
