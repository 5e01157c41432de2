"""The names of what a trial reports, defined once: every layer above imports them instead of retyping them.

A stage's engine metrics are reported under the stage's prefix (`teacher_val_acc`, `student_train_loss_kd`);
the names below are the ones the search layer reads by name.
"""
from __future__ import annotations

TEACHER, STUDENT = "teacher", "student"  # stage prefixes


def metric(stage: str, name: str) -> str:
    """`teacher_val_acc` from ('teacher', 'val_acc')."""
    return f"{stage}_{name}"


STUDENT_VAL_ACC = metric(STUDENT, "val_acc")  # every search's objective
STUDENT_EPOCH = metric(STUDENT, "epoch")  # ASHA's time: student epochs only
STUDENT_TEST_ACC = metric(STUDENT, "test_acc")
STUDENT_TRAIN_LOSS = metric(STUDENT, "train_loss")
TEACHER_EPOCH = metric(TEACHER, "epoch")
TEACHER_VAL_ACC = metric(TEACHER, "val_acc")
TEACHER_VAL_CMI = metric(TEACHER, "val_cmi")
TEACHER_TEST_ACC = metric(TEACHER, "test_acc")
TEACHER_TEST_CMI = metric(TEACHER, "test_cmi")
TEACHER_TEST_NLL = metric(TEACHER, "test_nll")
TEACHER_TEST_ECE = metric(TEACHER, "test_ece")
TEACHER_TEST_KL = metric(TEACHER, "test_kl_bayes")  # only where the data's true posterior is known (synthetic-bcpd)
TEACHER_TRAIN_LOSS = metric(TEACHER, "train_loss")

# Whichever stage is running: its training speed and (on CUDA) peak GPU memory, for the progress table.
IMAGES_PER_SEC = "images_per_sec"
GPU_MEMORY_GIB = "gpu_memory_gib"
# Tune's status table shows the first four metrics a trial reports: these, in this order.
PROGRESS = (STUDENT_VAL_ACC, STUDENT_EPOCH, IMAGES_PER_SEC, GPU_MEMORY_GIB)
