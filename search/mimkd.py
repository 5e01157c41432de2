"""Search MIMKD: the mutual-information critic (type, depth, width), its layers, the MI weights, T and alpha.

Each trial distils a student from the cached (or brought) MLL teacher with KD plus MIMKD's
Jensen-Shannon MI bounds; Optuna samples the conditional space, MIMKD's defaults first.
Offline demo (2 CPU cores, a few minutes):  python -m search.mimkd --preset digits
"""
from __future__ import annotations

import argparse
from functools import partial

import trainables
from distill.settings import DISTILLERS_KEY
from search.definition import Baseline, SearchDefinition, fixed
from search.student_search import (
    KD_LABELS, PUBLISHED_KD, STUDENT_COLUMNS, add_kd_options, inside, kd_ranges, ranged, student_inputs,
)
from search.runner import main_for
from spaces import Range
from spaces.mimkd import (
    BETA_GLOBAL, BETA_LOCAL, CRITIC, DEFAULT_BETA_RANGE, LAYERS, known_good, mimkd_space,
)
from trainables.metrics import STUDENT_VAL_ACC


def add_options(parser: argparse.ArgumentParser) -> None:
    add_kd_options(parser)
    parser.add_argument("--beta-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        default=[DEFAULT_BETA_RANGE.low, DEFAULT_BETA_RANGE.high],
                        help="log-uniform range of the MI weights beta_global and beta_local (default: 0.1 10)")


def ranges(args: argparse.Namespace) -> dict[str, Range]:
    return {"beta": Range(*args.beta_range, log=True).check("--beta-range"), **kd_ranges(args)}


def points(args: argparse.Namespace) -> list[dict]:
    bounds = ranges(args)
    checked = {**ranged(bounds), BETA_GLOBAL: bounds["beta"], BETA_LOCAL: bounds["beta"]}
    return [p for p in known_good() if inside(p, checked)]


DEFINITION = SearchDefinition(
    name="mimkd", description=__doc__, add_options=add_options,
    space=lambda args: partial(mimkd_space, **ranges(args)), points=points,
    log_params=frozenset({BETA_GLOBAL, BETA_LOCAL, "mimkd.separable_width", "mimkd.concat_width",
                          "mimkd.separable_embed"}),
    trainable=trainables.student, trainable_inputs=student_inputs,
    columns=STUDENT_COLUMNS, plot_metrics=(STUDENT_VAL_ACC,),
    baselines=fixed(Baseline("kd_only", "KD-only student (T=4, α=0.9)", {**PUBLISHED_KD, DISTILLERS_KEY: "kd"},
                             "the same student with KD alone at the published T = 4, α 0.9, CE 0.1, no MI terms")),
    label_names={CRITIC: "critic", LAYERS: "layers", BETA_GLOBAL: "β_g", BETA_LOCAL: "β_l", **KD_LABELS},
    distillers=("kd", "mimkd"), searched=("kd", "mimkd"),
)
main = main_for(DEFINITION)

if __name__ == "__main__":
    raise SystemExit(main())
