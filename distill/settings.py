"""Flat names of the settings a trial can change, shared by the command line, search spaces and trial configs.

The student's: `distillers` ("kd+crd"; "none": CE only), `ce_weight`, and `<distiller>.<field>` (e.g.
`dkd.beta`) for any field of a distiller's config. The teacher stage's: `teacher_objective` (e.g. "mll", the
objective switched off), `teacher_lr`, and `<objective>.<field>` (e.g. `mcmi.lam`, `label_smoothing.eps`).
A dotted key belongs to whichever registry holds its prefix. One function applies each side, so no layer names a
method."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from distill.errors import UserError
from distill.losses import DISTILLERS, DistillerConfig
from distill.teachers import TEACHER_OBJECTIVES, TeacherObjectiveConfig
from distill.typed_settings import encode_layers

DISTILLERS_KEY = "distillers"
CE_WEIGHT_KEY = "ce_weight"
NO_DISTILLER = "none"
TEACHER_OBJECTIVE_KEY = "teacher_objective"  # the objective of a trial's teacher stage, when not the search's own
TEACHER_LR_KEY = "teacher_lr"  # the learning rate of a trial's teacher stage


def setting_key(distiller: str, field: str) -> str:
    """The flat name of a distiller's field: 'dkd.beta'."""
    return f"{distiller}.{field}"


def encode_distillers(names: Sequence[str]) -> str:
    return "+".join(names) if names else NO_DISTILLER


def decode_distillers(encoded: str) -> tuple[str, ...]:
    return () if encoded == NO_DISTILLER else tuple(encoded.split("+"))


def flat_value(value: Any) -> Any:
    """A config value in its flat form: a tuple of layer names as one string ('-3,-2'; 'none' when empty)."""
    return encode_layers(value) if isinstance(value, tuple) else value


def distiller_values(flat: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{'dkd': {'beta': 8.0}} from the dotted keys of `flat` whose values are set (not None)."""
    values: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        name, dot, field = key.partition(".")
        if dot and value is not None:
            values.setdefault(name, {})[field] = value
    return values


def teacher_keys(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The dotted keys of `flat` that set a teacher objective's field (`mcmi.lam`); the rest are the student's."""
    owned = {}
    for key, value in flat.items():
        name, dot, _ = key.partition(".")
        if dot and name in TEACHER_OBJECTIVES:
            if name in DISTILLERS:
                raise UserError(f"{key}: {name} names both a teacher objective and a distiller; rename one")
            owned[key] = value
    return owned


def student_keys(flat: Mapping[str, Any]) -> dict[str, Any]:
    teacher = teacher_keys(flat)
    return {key: value for key, value in flat.items() if key not in teacher}


def configure_teacher(template: TeacherObjectiveConfig, flat: Mapping[str, Any]) -> TeacherObjectiveConfig:
    """The objective a teacher stage trains with: `template`, or the objective `teacher_objective` names at its
    defaults, with the dotted values of `flat` applied; a value for another objective is a UserError."""
    name = str(flat.get(TEACHER_OBJECTIVE_KEY, template.name()))
    config = template if name == template.name() else TEACHER_OBJECTIVES.get(name).Config()
    for owner, values in distiller_values(teacher_keys(flat)).items():
        if owner != name:
            keys = ", ".join(setting_key(owner, field) for field in values)
            raise UserError(f"{keys} set the {owner} objective, but the teacher trains with {name}")
        config = config.with_values(values)
    config.check()
    return config


def configure(names: Sequence[str], flat: Mapping[str, Any],
              templates: Mapping[str, DistillerConfig] | None = None) -> dict[str, DistillerConfig]:
    """The configs of the distillers `names`: each its template (else its published defaults) with the dotted
    values of `flat` applied. A name given twice, an unknown name or a value for a distiller that is not among
    `names` is a UserError, so a misspelt setting never falls back to a default silently; so is a value the
    config's own check rejects."""
    if len(set(names)) != len(names) or NO_DISTILLER in names:
        raise UserError(f"distillers {' '.join(names) or NO_DISTILLER}: name each distiller once, or "
                        f"'{NO_DISTILLER}' alone")
    templates = templates or {}
    configs = {name: templates.get(name) or DISTILLERS.get(name).Config() for name in names}
    for name, values in distiller_values(flat).items():
        if name not in configs:
            keys = ", ".join(setting_key(name, field) for field in values)
            raise UserError(f"{keys} set {name}, which the student does not use (it uses: "
                            f"{encode_distillers(names)})")
        configs[name] = configs[name].with_values(values)
    for config in configs.values():
        config.check()
    return configs
