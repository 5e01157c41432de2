"""`student`: distil KD or MIMKD from a fixed teacher; the trial's config sets T, alpha and MIMKD's critics."""
from __future__ import annotations

from distill.config import StudentJob
from distill.data import DataSplits
from distill.runs import build_student_run
from trainables import common
from trainables.overrides import student_job_for


def run_student_stage(job: StudentJob, splits: DataSplits, teacher_net, state: dict | None,
                      carried: dict[str, float], extra_files: dict[str, bytes]) -> None:
    """Distil and report student_* (plus `carried` metrics) each epoch, and the last epoch's test scores
    when the trial was given a test set; shared by both trainables."""
    run = build_student_run(job, splits, teacher=teacher_net)
    if state is not None:
        run.trainer.load_state_dict(state["trainer"])
    try:
        for result in common.train_stage(run):
            state = {"stage": "student", "trainer": run.trainer.state_dict(), "carried": carried}
            files = {common.STATE_FILE: common.state_bytes(state), common.STUDENT_FILE: common.weights_bytes(run),
                     **extra_files}
            tested = common.evaluation("student", run.trainer.model, splits, job.runtime) if run.trainer.done else {}
            common.report({**carried, **common.stage_metrics("student", result), **tested}, files)
    except common.Diverged as err:
        common.report({**carried, **common.diverged_metrics("student", str(err), run.trainer.epoch)}, {})


def student(config: dict, job: StudentJob, splits: DataSplits, teacher_weights: bytes) -> None:
    """The trial's student distilled from the fixed teacher in `teacher_weights`."""
    common.use_assigned_cpus()
    job = student_job_for(job, config)
    teacher_net = common.load_net(teacher_weights, job.teacher_arch, splits.num_classes)
    state = common.read_state(common.restored_files())
    run_student_stage(job, splits, teacher_net, state, {}, {})
