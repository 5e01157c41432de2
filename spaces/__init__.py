"""Optuna define-by-run search spaces: one module per search, pure module-level functions.

A space is `space(trial, ranges) -> constants | None`; bind its ranges with `functools.partial`
so the result stays picklable for Ray. Categorical choices are strings; conditional parameters
are named after the choice they belong to (e.g. `concat_width`).
"""
from spaces.ranges import Range

__all__ = ["Range"]
