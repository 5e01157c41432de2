"""`teacher`: train a search's MLL teacher from scratch with cross-entropy (the cache fill)."""
from __future__ import annotations

from collections.abc import Iterator

from distill.config import TeacherJob
from distill.data import DataSplits
from distill.runs import build_teacher_run
from trainables import common
from trainables.metrics import TEACHER


def teacher_trial(config: dict, job: TeacherJob, splits: DataSplits,
                  restored: dict[str, bytes]) -> Iterator[common.Report]:
    """teacher_* metrics each epoch; the checkpoint's teacher.pth holds its weights. Divergence is an error.
    The teacher's trial samples nothing: `config` is empty."""
    run = build_teacher_run(job, splits)
    try:
        for result in common.resumed_epochs(run, common.read_state(restored)):
            yield common.stage_metrics(TEACHER, result), {
                common.STATE_FILE: common.state_bytes({"trainer": run.trainer.state_dict()}),
                common.TEACHER_FILE: run.weights_bytes(),
            }
    except common.Diverged as err:
        raise RuntimeError(f"the MLL teacher diverged: {err}") from None


@common.runs(teacher_trial)
def teacher(config: dict, job: TeacherJob, splits: DataSplits) -> None:
    """The Tune trainable: `teacher_trial` from the trial's last checkpoint, each epoch reported."""
    common.use_assigned_cpus()
    common.report_all(teacher_trial(config, job, splits, common.restored_files()))
