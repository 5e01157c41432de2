"""Search the CMI weight lambda of an MCMI teacher by the accuracy of the student distilled from it.

Each trial fine-tunes the cached MLL teacher with CE - lam * CMI, then distils a student from it;
Optuna samples lam (log-uniform, the paper's 0.25 first) and ASHA stops weak students early.
The same search as `search.teacher --objective mcmi`, with the λ = 0 control as its baseline and its own flags.
Offline demo (2 CPU cores, a few minutes):  python -m search.mcmi_lambda --preset digits
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from search.definition import Baseline
from search.runner import main_for
from search.teacher_search import add_stage_options, teacher_definition
from spaces import Range
from spaces.method import method_spaces

SPACE = method_spaces("teacher")["mcmi"]
LAM = SPACE.key("lam")
DEFAULT_LAMBDA_RANGE = SPACE.ranges["lam"]


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("lambda search")
    group.add_argument("--lam-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       default=[DEFAULT_LAMBDA_RANGE.low, DEFAULT_LAMBDA_RANGE.high],
                       help="log-uniform range of lam; > 0 maximises CMI (default: 0.05 1.0)")
    add_stage_options(parser, epochs_flag="--mcmi-epochs")


def chosen(args: argparse.Namespace):
    return replace(SPACE, ranges={"lam": Range(*args.lam_range, log=True).check("--lam-range")})


DEFINITION = teacher_definition(
    "mcmi_lambda", "", __doc__, SPACE, chosen, add_options,
    Baseline("control", "λ=0 control", {LAM: 0.0},
             "the equal-budget control: the MLL teacher fine-tuned with the same recipe at λ = 0 (plain CE), "
             "then the same student; the primary comparison, since it isolates the CMI term"),
)
main = main_for(DEFINITION)

if __name__ == "__main__":
    raise SystemExit(main())
