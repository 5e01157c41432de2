"""`mcmi_pipeline`, the lambda trial: fine-tune the cached MLL teacher with CE - lam * CMI, then distil.

The teacher stage reports teacher_* (accuracy, CMI, losses) with student_epoch 0 and a NaN
student_val_acc: no student exists yet, so no number stands in for one (ASHA reaches no rung at
time 0 and the search's Optuna reporter skips these results). The student stage reports student_*
every epoch with student_epoch 1, 2, ... which is ASHA's time attribute, so ASHA judges the student
only. The search objective is student_val_acc: what MCMI claims to improve.
A config with `fine_tune: False` skips the teacher stage and distils from the untouched MLL teacher
(the confirmation stage's "MLL teacher" baseline).
"""
from __future__ import annotations

import math
from collections.abc import Iterator

from distill.config import MCMIJob, StudentJob
from distill.data import DataSplits
from distill.runs import build_mcmi_run
from trainables import common
from trainables.metrics import STUDENT, STUDENT_EPOCH, STUDENT_VAL_ACC, TEACHER, metric
from trainables.overrides import fine_tunes, mcmi_job_for, student_job_for
from trainables.student import student_stage

WAITING_FOR_STUDENT = {STUDENT_EPOCH: 0, STUDENT_VAL_ACC: math.nan}  # no student yet: not a score
CARRIED = ("val_acc", "val_cmi")  # the fine-tuned teacher's last validation numbers, kept in student reports


def lambda_trial(config: dict, mcmi_job: MCMIJob, student_job: StudentJob, splits: DataSplits,
                 teacher_weights: bytes, restored: dict[str, bytes]) -> Iterator[common.Report]:
    """Teacher stage then student stage, continuing from `restored` (the trial's last checkpoint files)."""
    mcmi_job, student_job = mcmi_job_for(mcmi_job, config), student_job_for(student_job, config)
    state = common.read_state(restored)
    mll_teacher = common.load_net(teacher_weights, mcmi_job.arch, splits.num_classes)
    if state is not None and state["stage"] == STUDENT:
        fine_tuned, carried = restored[common.TEACHER_FILE], state["carried"]
    elif not fine_tunes(config):
        fine_tuned = teacher_weights
        carried = common.evaluation(TEACHER, mll_teacher, splits, mcmi_job.runtime, ("val", "test"))
    else:
        run = build_mcmi_run(mcmi_job, splits, teacher=mll_teacher)
        if state is not None:
            run.trainer.load_state_dict(state["trainer"])
        try:
            for result in common.train_stage(run):
                state = {"stage": TEACHER, "trainer": run.trainer.state_dict()}
                yield ({**common.stage_metrics(TEACHER, result), **WAITING_FOR_STUDENT},
                       {common.STATE_FILE: common.state_bytes(state)})
        except common.Diverged as err:
            yield common.diverged_metrics(TEACHER, str(err), 0), {}
            return
        fine_tuned = run.weights_bytes()
        carried = {metric(TEACHER, k): v for k, v in run.trainer.history[-1].items() if k in CARRIED}
        carried.update(common.evaluation(TEACHER, run.trainer.model, splits, mcmi_job.runtime))
        state = None
    teacher_net = common.load_net(fine_tuned, mcmi_job.arch, splits.num_classes)
    yield from student_stage(student_job, splits, teacher_net, state, carried, {common.TEACHER_FILE: fine_tuned})


@common.runs(lambda_trial)
def mcmi_pipeline(config: dict, mcmi_job: MCMIJob, student_job: StudentJob, splits: DataSplits,
                  teacher_weights: bytes) -> None:
    """The Tune trainable: `lambda_trial` from the trial's last checkpoint, each epoch reported."""
    common.use_assigned_cpus()
    common.report_all(lambda_trial(config, mcmi_job, student_job, splits, teacher_weights, common.restored_files()))
