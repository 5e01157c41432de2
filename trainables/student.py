"""`student`: distil a student from a fixed teacher with the trial's distillers and their settings."""
from __future__ import annotations

from collections.abc import Iterator

from distill.config import StudentJob
from distill.data import DataSplits
from distill.runs import build_student_run
from trainables import common
from trainables.metrics import STUDENT
from trainables.overrides import student_job_for


def student_stage(job: StudentJob, splits: DataSplits, teacher_net, state: dict | None,
                  carried: dict[str, float], extra_files: dict[str, bytes]) -> Iterator[common.Report]:
    """Distil, yielding student_* (plus `carried` metrics) and the checkpoint files each epoch, with the last
    epoch's test scores when the trial was given a test set; shared by both trainables."""
    run = build_student_run(job, splits, teacher=teacher_net)
    try:
        for result in common.resumed_epochs(run, state):
            state = {"stage": STUDENT, "trainer": run.trainer.state_dict(), "carried": carried}
            files = {common.STATE_FILE: common.state_bytes(state), common.STUDENT_FILE: run.weights_bytes(),
                     **extra_files}
            tested = common.evaluation(STUDENT, run.trainer.model, splits, job.runtime) if run.trainer.done else {}
            yield {**carried, **common.stage_metrics(STUDENT, result), **tested}, files
    except common.Diverged as err:
        yield {**carried, **common.diverged_metrics(STUDENT, str(err), run.trainer.epoch)}, {}


def student_trial(config: dict, job: StudentJob, splits: DataSplits, teacher_weights: bytes,
                  restored: dict[str, bytes]) -> Iterator[common.Report]:
    """The trial's student distilled from the fixed teacher in `teacher_weights`, continuing from `restored`."""
    job = student_job_for(job, config)
    teacher_net = common.load_net(teacher_weights, job.teacher_arch, splits.num_classes)
    yield from student_stage(job, splits, teacher_net, common.read_state(restored), {}, {})


@common.runs(student_trial)
def student(config: dict, job: StudentJob, splits: DataSplits, teacher_weights: bytes) -> None:
    """The Tune trainable: `student_trial` from the trial's last checkpoint, each epoch reported."""
    common.use_assigned_cpus()
    common.report_all(student_trial(config, job, splits, teacher_weights, common.restored_files()))
