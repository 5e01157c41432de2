"""What the searches of a teacher objective share (`search.teacher --objective NAME`, `search.mcmi_lambda`): the
teacher-stage options, the space (the objective's fields, and the stage's learning rate when asked), the first
point, and the two baselines every teacher-side answer is judged against. Each trial trains its own teacher with
the objective (`trainables.teacher_student`), then distils the student from it.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial

import trainables
from distill.config import TEACHER_STARTS, TeacherJob, fine_tune_recipe, mll_recipe
from distill.settings import TEACHER_LR_KEY, TEACHER_OBJECTIVE_KEY
from search.definition import Baseline, SearchDefinition
from search.student_search import inside
from spaces import Range
from spaces.method import MethodSpace, teacher_space
from trainables.metrics import STUDENT_EPOCH, STUDENT_VAL_ACC, TEACHER_VAL_ACC, TEACHER_VAL_CMI
from trainables.overrides import TEACHER_STAGE_KEY

STAGE_COLUMNS = (TEACHER_VAL_ACC, TEACHER_VAL_CMI, STUDENT_EPOCH, STUDENT_VAL_ACC)
MLL_TEACHER = Baseline("mll_teacher", "MLL-teacher student", {TEACHER_STAGE_KEY: False},
                       "the same student distilled from the untouched MLL teacher: the comparison papers on better "
                       "teachers make (it also credits the objective with the teacher stage's extra epochs)")


def add_stage_options(parser: argparse.ArgumentParser, epochs_flag: str = "--stage-epochs") -> None:
    """Where each trial's teacher starts, how long it trains, and whether its learning rate is searched."""
    group = parser.add_argument_group("teacher stage (each trial trains its own teacher, then distils its student)")
    group.add_argument("--teacher-start", choices=TEACHER_STARTS, default="mll",
                       help="mll: fine-tune the search's MLL teacher with the fine-tuning recipe (the MCMI paper's); "
                       "scratch: train a new teacher with the MLL recipe (--teacher-epochs) (default: mll)")
    group.add_argument(epochs_flag, dest="stage_epochs", type=int, metavar="EPOCHS",
                       help=f"epochs of each trial's fine-tuning from the MLL teacher (default: "
                       f"{fine_tune_recipe(TeacherJob.arch).epochs}; a teacher from scratch trains --teacher-epochs)")
    group.add_argument("--lr-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       help="also search the teacher stage's learning rate, log-uniform over this range")


def stage_lr(args: argparse.Namespace) -> float:
    """The recipe's learning rate of the teacher stage."""
    recipe = mll_recipe if args.teacher_start == "scratch" else fine_tune_recipe
    return recipe(args.teacher).lr


def teacher_definition(name: str, command: str, description: str, space: MethodSpace,
                       chosen: Callable[[argparse.Namespace], MethodSpace],
                       add_options: Callable[[argparse.ArgumentParser], None],
                       control: Baseline) -> SearchDefinition:
    """The search of `space`'s objective: the ranges `chosen` makes of the options, the objective's default first
    (with the recipe's learning rate when that is searched), and `control` then the MLL-teacher student as the
    baselines."""

    def lr_range(args: argparse.Namespace) -> Range | None:
        return Range(*args.lr_range, log=True).check("--lr-range") if args.lr_range else None

    def space_for(args: argparse.Namespace):
        return partial(teacher_space, space=chosen(args), lr=lr_range(args))

    def points(args: argparse.Namespace) -> list[dict]:
        picked, lr = chosen(args), lr_range(args)
        point = picked.known_good()
        ranges = {picked.key(k): r for k, r in picked.ranges.items()}
        if lr is not None:
            point[TEACHER_LR_KEY], ranges[TEACHER_LR_KEY] = stage_lr(args), lr
        return [point] if inside(point, ranges) else []

    return SearchDefinition(
        name=name, command=command, description=description, add_options=add_options, space=space_for,
        points=points, log_params=space.log_params() | {TEACHER_LR_KEY}, trainable=trainables.teacher_student,
        trainable_inputs=lambda jobs, splits, weights: dict(stage=jobs.stage, student_job=jobs.student, splits=splits,
                                                            teacher_weights=weights),
        columns=STAGE_COLUMNS, plot_metrics=(STUDENT_VAL_ACC, TEACHER_VAL_CMI),
        baselines=lambda args: (control, MLL_TEACHER),
        label_names={**space.label_names(), TEACHER_LR_KEY: "lr"}, teacher_objective=space.method,
    )


def off_control(space: MethodSpace) -> Baseline:
    """The equal-budget control of a search of `space`'s objective: the same teacher stage trained with plain CE."""
    return Baseline("control", "CE control", {TEACHER_OBJECTIVE_KEY: "mll"},
                    f"the equal-budget control: the same teacher stage with {space.method} switched off (plain CE), "
                    "then the same student; the primary comparison, since it isolates the objective")

