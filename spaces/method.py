"""A distiller's own knobs as a search space: one `MethodSpace` per method, in its own module of `spaces/`.

A module that defines `SPACE = MethodSpace(...)` is found by `method_spaces()`, so a new method's
search is one new file. Its first point is the method's published default, read from its config.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass, field

from distill.errors import UserError
from distill.losses.published import published_config
from distill.settings import flat_value, setting_key
from spaces.ranges import Range


@dataclass(frozen=True)
class MethodSpace:
    """Ranges (floats) and choices (categorical) of a distiller's config fields, and their symbols in labels."""

    distiller: str
    ranges: dict[str, Range]
    choices: dict[str, tuple] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def key(self, name: str) -> str:
        return setting_key(self.distiller, name)

    def known_good(self, teacher: str | None = None, student: str | None = None) -> dict:
        """The published default of every searched field: the reference code's for the teacher → student pair
        where it has one, else the config's own defaults."""
        config = published_config(self.distiller, teacher, student)
        return {self.key(name): flat_value(getattr(config, name)) for name in (*self.ranges, *self.choices)}

    def log_params(self) -> frozenset[str]:
        return frozenset(self.key(name) for name, r in self.ranges.items() if r.log)

    def label_names(self) -> dict[str, str]:
        return {self.key(name): symbol for name, symbol in self.labels.items()}

    def with_ranges(self, overrides: dict[str, Range]) -> MethodSpace:
        """This space with some ranges replaced (a user's `--range FIELD LOW HIGH`), each checked."""
        unknown = sorted(set(overrides) - set(self.ranges))
        if unknown:
            raise UserError(f"--range {unknown[0]}: {self.distiller}'s search has no range of that name; it ranges "
                            f"over {', '.join(self.ranges)}")
        checked = {name: r.check(f"--range {name}") for name, r in overrides.items()}
        return dataclasses.replace(self, ranges={**self.ranges, **checked})


def method_space(trial, space: MethodSpace) -> None:
    """Every range sampled (log-uniform where marked), every choice categorical, under dotted keys."""
    for name, bounds in space.ranges.items():
        bounds.suggest(trial, space.key(name))
    for name, options in space.choices.items():
        trial.suggest_categorical(space.key(name), options)


def method_spaces() -> dict[str, MethodSpace]:
    """Every `SPACE` defined by a module of this package, by distiller name."""
    import spaces

    found = {}
    for module in pkgutil.iter_modules(spaces.__path__):
        space = getattr(importlib.import_module(f"spaces.{module.name}"), "SPACE", None)
        if isinstance(space, MethodSpace):
            found[space.distiller] = space
    return dict(sorted(found.items()))
