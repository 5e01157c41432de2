"""Search the KD temperature T and weight alpha (CE weight 1 - alpha) for a fixed MLL teacher.

Each trial distils a student from the cached (or brought) teacher; Optuna samples T and alpha,
T = 4 with alpha = 0.9 first, and ASHA stops weak students early.
Offline demo (2 CPU cores, a few minutes):  python -m search.kd_temperature --preset digits
"""
from __future__ import annotations

from functools import partial

import trainables
from search.definition import Baseline, SearchDefinition, fixed
from search.runner import main_for
from search.student_search import (
    KD, KD_LABELS, PUBLISHED_KD, STUDENT_COLUMNS, add_kd_options, first_points, kd_space, student_inputs,
)
from spaces.method import method_space
from trainables.metrics import STUDENT_VAL_ACC

DEFINITION = SearchDefinition(
    name="kd_temperature", description=__doc__, add_options=add_kd_options,
    space=lambda args: partial(method_space, space=kd_space(args)),
    points=lambda args: first_points((kd_space(args),)),
    log_params=KD.log_params(), trainable=trainables.student, trainable_inputs=student_inputs,
    columns=STUDENT_COLUMNS, plot_metrics=(STUDENT_VAL_ACC,),
    baselines=fixed(Baseline("kd_default", "published KD default (T=4, α=0.9)", PUBLISHED_KD,
                             "Hinton's KD at T = 4 with α 0.9, γ 0.1, the setting RepDistiller and most KD papers "
                             "use")),
    label_names=KD_LABELS, searched=("kd",),
)
main = main_for(DEFINITION)

if __name__ == "__main__":
    raise SystemExit(main())
