"""`teacher_student`, the trial of every teacher-side search: train the trial's teacher, then distil from it.

The teacher stage trains (or fine-tunes the cached MLL teacher) with the trial's teacher objective and reports
teacher_* (accuracy, CMI, losses) with student_epoch 0 and a NaN student_val_acc: no student exists yet, so no
number stands in for one (ASHA reaches no rung at time 0 and the search's Optuna reporter skips these results).
The student stage reports student_* every epoch with student_epoch 1, 2, ... which is ASHA's time attribute, so
ASHA judges the student only. The search objective is student_val_acc: what a better teacher should improve.
A config with `teacher_stage: False` skips the teacher stage and distils from the untouched MLL teacher (the
confirmation stage's "MLL teacher" baseline).
"""
from __future__ import annotations

import math
from collections.abc import Iterator

from distill.config import StudentJob, TeacherStage
from distill.data import DataSplits
from distill.runs import build_teacher_run
from trainables import common
from trainables.metrics import STUDENT, STUDENT_EPOCH, STUDENT_VAL_ACC, TEACHER, metric
from trainables.overrides import student_job_for, teacher_job_for, trains_teacher
from trainables.student import student_stage

WAITING_FOR_STUDENT = {STUDENT_EPOCH: 0, STUDENT_VAL_ACC: math.nan}  # no student yet: not a score
CARRIED = ("val_acc", "val_cmi")  # the trained teacher's last validation numbers, kept in student reports


def teacher_student_trial(config: dict, stage: TeacherStage, student_job: StudentJob, splits: DataSplits,
                          teacher_weights: bytes, restored: dict[str, bytes]) -> Iterator[common.Report]:
    """Teacher stage then student stage, continuing from `restored` (the trial's last checkpoint files);
    `teacher_weights` is the search's MLL teacher."""
    teacher_job, student_job = teacher_job_for(stage.job, config), student_job_for(student_job, config)
    state = common.read_state(restored)
    if state is not None and state["stage"] == STUDENT:
        trained, carried = restored[common.TEACHER_FILE], state["carried"]
    elif not trains_teacher(config):
        trained = teacher_weights
        mll = common.load_net(teacher_weights, teacher_job.arch, splits.num_classes)
        carried = common.evaluation(TEACHER, mll, splits, teacher_job.runtime, ("val", "test"))
    else:
        start = common.load_net(teacher_weights, teacher_job.arch, splits.num_classes) if stage.start == "mll" else None
        run = build_teacher_run(teacher_job, splits, teacher=start)
        try:
            for result in common.resumed_epochs(run, state):
                state = {"stage": TEACHER, "trainer": run.trainer.state_dict()}
                yield ({**common.stage_metrics(TEACHER, result), **WAITING_FOR_STUDENT},
                       {common.STATE_FILE: common.state_bytes(state)})
        except common.Diverged as err:
            yield common.diverged_metrics(TEACHER, str(err), 0), {}
            return
        trained = run.weights_bytes()
        carried = {metric(TEACHER, k): v for k, v in run.trainer.history[-1].items() if k in CARRIED}
        carried.update(common.evaluation(TEACHER, run.trainer.model, splits, teacher_job.runtime))
        state = None
    teacher_net = common.load_net(trained, teacher_job.arch, splits.num_classes)
    yield from student_stage(student_job, splits, teacher_net, state, carried, {common.TEACHER_FILE: trained})


@common.runs(teacher_student_trial)
def teacher_student(config: dict, stage: TeacherStage, student_job: StudentJob, splits: DataSplits,
                    teacher_weights: bytes) -> None:
    """The Tune trainable: `teacher_student_trial` from the trial's last checkpoint, each epoch reported."""
    common.use_assigned_cpus()
    common.report_all(teacher_student_trial(config, stage, student_job, splits, teacher_weights,
                                            common.restored_files()))
