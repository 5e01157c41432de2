"""Search the CMI weight lambda of an MCMI teacher by the accuracy of the student distilled from it.

Each trial fine-tunes the cached MLL teacher with CE - lam * CMI, then distils a student from it;
Optuna samples lam (log-uniform, the paper's 0.25 first) and ASHA stops weak students early.
Offline demo (2 CPU cores, a few minutes):  python -m search.mcmi_lambda --preset digits
"""
from __future__ import annotations

import argparse
from functools import partial

import trainables
from distill.config import MCMIJob, mcmi_recipe
from search.definition import Baseline, SearchDefinition, fixed
from search.runner import main_for
from spaces import Range
from spaces.mcmi_lambda import DEFAULT_LAMBDA_RANGE, known_good, lambda_space
from trainables.overrides import FINE_TUNE_KEY
from trainables.metrics import STUDENT_EPOCH, STUDENT_VAL_ACC, TEACHER_VAL_ACC, TEACHER_VAL_CMI


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("lambda search")
    group.add_argument("--lam-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       default=[DEFAULT_LAMBDA_RANGE.low, DEFAULT_LAMBDA_RANGE.high],
                       help="log-uniform range of lam; > 0 maximises CMI (default: 0.05 1.0)")
    group.add_argument("--mcmi-epochs", type=int,
                       help=f"MCMI fine-tuning epochs per trial ({mcmi_recipe(MCMIJob.arch).epochs})")
    group.add_argument("--lr-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       help="also search the fine-tuning learning rate, log-uniform over this range")


def space(args: argparse.Namespace):
    lam = Range(*args.lam_range, log=True).check("--lam-range")
    lr = Range(*args.lr_range, log=True).check("--lr-range") if args.lr_range else None
    return partial(lambda_space, lam=lam, lr=lr)


def points(args: argparse.Namespace) -> list[dict]:
    """The paper's lam (and the recipe's lr) when they lie inside the searched ranges."""
    recipe_lr = mcmi_recipe(args.teacher).lr if args.lr_range else None
    point = known_good(recipe_lr)[0]
    inside = args.lam_range[0] <= point["lam"] <= args.lam_range[1] and (
        recipe_lr is None or args.lr_range[0] <= recipe_lr <= args.lr_range[1])
    return [point] if inside else []


DEFINITION = SearchDefinition(
    name="mcmi_lambda", description=__doc__, add_options=add_options, space=space, points=points,
    log_params=frozenset({"lam", "mcmi_lr"}), trainable=trainables.mcmi_pipeline,
    trainable_inputs=lambda jobs, splits, weights: dict(mcmi_job=jobs.mcmi, student_job=jobs.student,
                                                        splits=splits, teacher_weights=weights),
    columns=(TEACHER_VAL_ACC, TEACHER_VAL_CMI, STUDENT_EPOCH, STUDENT_VAL_ACC),
    plot_metrics=(STUDENT_VAL_ACC, TEACHER_VAL_CMI), teacher_artifact=True,
    baselines=fixed(
        Baseline("control", "λ=0 control", {"lam": 0.0},
                 "the equal-budget control: the MLL teacher fine-tuned with the same recipe at λ = 0 (plain CE), "
                 "then the same student; the primary comparison, since it isolates the CMI term"),
        Baseline("mll_teacher", "MLL-teacher student", {FINE_TUNE_KEY: False},
                 "the same student distilled from the untouched MLL teacher: the comparison the MCMI paper makes "
                 "(it also credits MCMI with the extra fine-tuning epochs)"),
    ),
    label_names={"lam": "λ", "mcmi_lr": "lr"},
)
main = main_for(DEFINITION)

if __name__ == "__main__":
    raise SystemExit(main())
