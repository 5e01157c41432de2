"""Ray Tune function trainables: thin glue from a trial's config to `distill` runs and back to Tune.

Each trainable takes the trial's sampled `config` plus, through `tune.with_parameters`, the fixed
job templates, the data splits and (where one is needed) the teacher's weights, so the object
store ships them once per node. It reports every epoch with `ray.tune.report(metrics, checkpoint)`
and resumes from `ray.tune.get_checkpoint()`.
"""
from trainables.student import student
from trainables.teacher import teacher
from trainables.teacher_student import teacher_student

__all__ = ["student", "teacher", "teacher_student"]
