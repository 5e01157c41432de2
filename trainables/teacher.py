"""`teacher`: train an MLL teacher from scratch with cross-entropy (the search's cache fill uses it)."""
from __future__ import annotations

from distill.config import TeacherJob
from distill.data import DataSplits
from distill.runs import build_teacher_run
from trainables import common


def teacher(config: dict, job: TeacherJob, splits: DataSplits) -> None:
    """Reports teacher_* metrics each epoch; the checkpoint's teacher.pth holds its weights."""
    common.use_assigned_cpus()
    run = build_teacher_run(job, splits)
    state = common.read_state(common.restored_files())
    if state is not None:
        run.trainer.load_state_dict(state["trainer"])
    try:
        for result in common.train_stage(run):
            common.report(common.stage_metrics("teacher", result), {
                common.STATE_FILE: common.state_bytes({"trainer": run.trainer.state_dict()}),
                common.TEACHER_FILE: common.weights_bytes(run),
            })
    except common.Diverged as err:
        raise RuntimeError(f"the MLL teacher diverged: {err}") from None
