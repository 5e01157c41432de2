"""Teacher objectives (what a teacher is trained with), one module each, registered in `TEACHER_OBJECTIVES`:
`mll` (cross-entropy), `mcmi` (CE − λ·CMI) and `label_smoothing` (CE with smoothing ε)."""
from distill.teachers import mll, mcmi, label_smoothing  # noqa: F401,I001  (registration, in listing order)
from distill.teachers.base import TEACHER_OBJECTIVES, TeacherContext, TeacherObjectiveConfig, register_teacher_objective
from distill.teachers.label_smoothing import LabelSmoothingConfig
from distill.teachers.mcmi import MCMIConfig
from distill.teachers.mll import MLLConfig

__all__ = ["TEACHER_OBJECTIVES", "LabelSmoothingConfig", "MCMIConfig", "MLLConfig", "TeacherContext",
           "TeacherObjectiveConfig", "register_teacher_objective"]
