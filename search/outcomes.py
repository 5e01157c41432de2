"""What became of a run, in words a person filters on: the `kdtune.outcome` tag, the tables and the figures.

A trial's *state* says how it ended (what the search's logic ranks by); its *outcome* adds what the
numbers say about the teacher it distilled from: a trial's own teacher whose validation accuracy fell far
below the MLL teacher's has collapsed, whatever its student then did.
"""
from __future__ import annotations

import math

from search.options import TIME_ATTR
from trainables.common import DIVERGED_KEY
from trainables.metrics import TEACHER_EPOCH, TEACHER_VAL_ACC

COMPLETE, STOPPED, DIVERGED, ERROR = "complete", "stopped early", "diverged", "error"
COLLAPSED = "teacher collapsed"
STATES = (COMPLETE, STOPPED, DIVERGED, ERROR)
USABLE = (COMPLETE, STOPPED)  # trials that produced a student
OUTCOMES = (COMPLETE, STOPPED, COLLAPSED, DIVERGED, ERROR)
COLLAPSE_RATIO = 0.8  # a trial's teacher below 80% of the MLL teacher's validation accuracy has collapsed
TEACHER_ACC = TEACHER_VAL_ACC  # the trial's teacher's last validation accuracy (teacher-stage trials only)


def is_number(value: object) -> bool:
    """A finite real number (not a bool): a result value a run can be judged or plotted by."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def trial_state(metrics: dict, error: object, max_t: int) -> str:
    """How a trial ended: its error, a diverged loss, or the student epochs ASHA let it run."""
    if error is not None:
        return ERROR
    if metrics.get(DIVERGED_KEY):
        return DIVERGED
    return COMPLETE if metrics.get(TIME_ATTR, 0) >= max_t else STOPPED


def collapsed(metrics: dict, reference_acc: float | None) -> bool:
    """The trial's own teacher ended far below the MLL teacher's validation accuracy."""
    acc = metrics.get(TEACHER_ACC)
    return reference_acc is not None and is_number(acc) and acc < COLLAPSE_RATIO * reference_acc


def outcome(metrics: dict, error: object, max_t: int, reference_acc: float | None) -> str:
    """The state, except that a usable trial whose teacher collapsed says so."""
    state = trial_state(metrics, error, max_t)
    return COLLAPSED if state in USABLE and collapsed(metrics, reference_acc) else state


def describe_collapse(reference_acc: float | None) -> str:
    """The rule, for reports and figure legends."""
    if reference_acc is None:
        return "no MLL teacher accuracy known: collapse not judged"
    return (f"teacher collapsed: the trial's teacher's val acc below {COLLAPSE_RATIO:.0%} of the MLL "
            f"teacher's {100 * reference_acc:.2f}%")


def epochs_trained(metrics: dict, stage_epochs: int) -> int:
    """The epochs a run trained by its last result: its student's, plus its own teacher stage's (`stage_epochs`
    long, whole once a student exists) where it has one."""
    student = int(metrics.get(TIME_ATTR) or 0)
    if not stage_epochs:
        return student
    return student + (stage_epochs if student > 0 else int(metrics.get(TEACHER_EPOCH) or 0))
