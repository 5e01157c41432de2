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
from distill.config import MIMKDConfig
from search.definition import Baseline, SearchDefinition
from search.kd_temperature import KD_LABELS, PUBLISHED_KD, STUDENT_COLUMNS, add_kd_options, inside, kd_ranges
from search.runner import main_for
from spaces import Range
from spaces.mimkd import DEFAULT_BETA_RANGE, known_good, mimkd_space
from trainables.overrides import NO_CRITIC


def add_options(parser: argparse.ArgumentParser) -> None:
    add_kd_options(parser)
    parser.add_argument("--beta-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        default=[DEFAULT_BETA_RANGE.low, DEFAULT_BETA_RANGE.high],
                        help="log-uniform range of the MI weights beta_global and beta_local (default: 0.1 10)")


def ranges(args: argparse.Namespace) -> dict[str, Range]:
    return {"beta": Range(*args.beta_range, log=True).check("--beta-range"), **kd_ranges(args)}


def points(args: argparse.Namespace) -> list[dict]:
    bounds = ranges(args)
    checked = {**bounds, "beta_global": bounds["beta"], "beta_local": bounds["beta"]}
    return [p for p in known_good() if inside(p, checked)]


def student_inputs(jobs, splits, weights) -> dict:
    return dict(job=replace(jobs.student, mimkd=MIMKDConfig()), splits=splits, teacher_weights=weights)


DEFINITION = SearchDefinition(
    name="mimkd", description=__doc__, add_options=add_options,
    space=lambda args: partial(mimkd_space, **ranges(args)), points=points,
    log_params=frozenset({"beta_global", "beta_local", "separable_width", "concat_width", "separable_embed"}),
    trainable=trainables.student, trainable_inputs=student_inputs,
    columns=STUDENT_COLUMNS, plot_metrics=("student_val_acc",),
    baselines=(Baseline("kd_only", "KD-only student (T=4, α=0.9)", {**PUBLISHED_KD, "critic": NO_CRITIC},
                        "the same student with KD alone at the published T = 4, α 0.9, γ 0.1, no MI terms"),),
    label_names={"critic": "critic", "local_layers": "layers", "beta_global": "β_g", "beta_local": "β_l",
                 **KD_LABELS},
)
main = main_for(DEFINITION)

if __name__ == "__main__":
    raise SystemExit(main())
