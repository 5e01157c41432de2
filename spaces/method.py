"""A method's own knobs as a search space: one `MethodSpace` per distiller or teacher objective, in its own module
of `spaces/`.

A module that defines `SPACE = register_space(MethodSpace(...))` is found by `method_spaces(side)`, so a new
method's search is one new file. Its first point is the method's published default, read from its config.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from distill.errors import UserError
from distill.losses.published import published_config
from distill.registry import Registry
from distill.settings import TEACHER_LR_KEY, flat_value, setting_key
from distill.teachers import TEACHER_OBJECTIVES
from distill.typed_settings import Settings
from spaces.ranges import Range

Side = Literal["student", "teacher"]  # a distiller's knobs, or a teacher objective's


@dataclass(frozen=True)
class MethodSpace:
    """Ranges (numbers) and choices (categorical) of a method's config fields, the fields sampled only under some
    choices (`conditions`: field -> (choice field, the values it is sampled for)), the constants that follow from a
    sample (`constants`: a module-level function of the sampled keys), and the fields' symbols in labels."""

    method: str  # the distiller's or teacher objective's registered name
    ranges: dict[str, Range]
    choices: dict[str, tuple] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    side: Side = "student"
    conditions: dict[str, tuple[str, tuple]] = field(default_factory=dict)
    constants: Callable[[dict], dict] | None = None

    def active(self, name: str, chosen: dict) -> bool:
        """Whether field `name` is sampled given the choices made so far (field -> value)."""
        if name not in self.conditions:
            return True
        choice, values = self.conditions[name]
        return chosen.get(choice) in values

    def key(self, name: str) -> str:
        return setting_key(self.method, name)

    def published(self, teacher: str | None = None, student: str | None = None) -> Settings:
        """The method's config at its published values: for a distiller, the reference code's for the teacher →
        student pair where it has one; else the config's own defaults."""
        if self.side == "teacher":
            return TEACHER_OBJECTIVES.get(self.method).Config()
        return published_config(self.method, teacher, student)

    def known_good(self, teacher: str | None = None, student: str | None = None) -> dict:
        """The published value of every field the space would sample there, and the constants that follow."""
        config = self.published(teacher, student)
        chosen = {name: flat_value(getattr(config, name)) for name in self.choices}
        point = {self.key(name): value for name, value in chosen.items()}
        point.update({self.key(name): flat_value(getattr(config, name)) for name in self.ranges
                      if self.active(name, chosen)})
        return {**point, **(self.constants(point) if self.constants else {})}

    def sample(self, trial) -> dict:
        """Every choice, then every range whose condition holds, under dotted keys; returns the constants."""
        chosen = {name: trial.suggest_categorical(self.key(name), options) for name, options in self.choices.items()}
        values = {self.key(name): value for name, value in chosen.items()}
        for name, bounds in self.ranges.items():
            if self.active(name, chosen):
                values[self.key(name)] = bounds.suggest(trial, self.key(name))
        return self.constants(values) if self.constants else {}

    def log_params(self) -> frozenset[str]:
        return frozenset(self.key(name) for name, r in self.ranges.items() if r.log)

    def label_names(self) -> dict[str, str]:
        return {self.key(name): symbol for name, symbol in self.labels.items()}

    def with_ranges(self, overrides: dict[str, Range]) -> MethodSpace:
        """This space with some ranges replaced (a user's `--range FIELD LOW HIGH`), each checked."""
        unknown = sorted(set(overrides) - set(self.ranges))
        if unknown:
            raise UserError(f"--range {unknown[0]}: {self.method}'s search has no range of that name; it ranges "
                            f"over {', '.join(self.ranges)}")
        checked = {name: r.check(f"--range {name}") for name, r in overrides.items()}
        for name, bounds in checked.items():  # a bound the method's own config refuses, e.g. ε = 1
            for bound in (bounds.low, bounds.high):
                self.published().with_values({name: bound}).check()
        return dataclasses.replace(self, ranges={**self.ranges, **checked})


def method_space(trial, space: MethodSpace) -> dict:
    """The define-by-run space of one method: its choices, its (conditional) ranges, its constants."""
    return space.sample(trial)


def joint_space(trial, spaces: tuple[MethodSpace, ...]) -> dict:
    """Several methods sampled together (MIMKD with KD), each under its own keys; their constants merged."""
    constants: dict = {}
    for space in spaces:
        constants.update(space.sample(trial))
    return constants


def teacher_space(trial, space: MethodSpace, lr: Range | None = None) -> dict:
    """A teacher objective's fields, and the teacher stage's learning rate over `lr` when it is searched too."""
    constants = space.sample(trial)
    if lr is not None:
        lr.suggest(trial, TEACHER_LR_KEY)
    return constants


SPACES: Registry = Registry("search space")  # by method name; each module of this package registers its own


def register_space(space: MethodSpace) -> MethodSpace:
    """Adds `space` under its method's name (as distillers and teacher objectives are registered); returns it."""
    SPACES.register(space.method)(space)
    return space


def method_spaces(side: Side = "student") -> dict[str, MethodSpace]:
    """Every registered space of `side`, by method name: this package's modules (each registers its own when
    imported) and any a caller registered."""
    import spaces

    for module in pkgutil.iter_modules(spaces.__path__):
        importlib.import_module(f"spaces.{module.name}")
    found = {name: SPACES.get(name) for name in SPACES.names()}
    return dict(sorted((name, space) for name, space in found.items() if space.side == side))
