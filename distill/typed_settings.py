"""Typed settings: a distiller's knobs, a teacher objective's. Each is a frozen dataclass whose fields carry their
published defaults and help, registered by name, so its command-line flags, search keys and MLflow params follow
from it; `with_values` applies a search trial's or a command line's values, checked against the field types.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from distill.errors import UserError
from distill.registry import Registry

NO_LAYERS = "none"  # the string form of an empty layer tuple (search spaces sample strings)


def decode_layers(encoded: str) -> tuple[str, ...]:
    """'-3,-2' -> ('-3', '-2'); 'none' -> (): how a categorical search parameter names layers."""
    return () if encoded in ("", NO_LAYERS) else tuple(part.strip() for part in encoded.split(","))


def encode_layers(layers: tuple[str, ...]) -> str:
    return ",".join(layers) if layers else NO_LAYERS


@dataclass(frozen=True)
class Settings:
    """Base of registered settings; each kind (distillers, teacher objectives) sets the registry that names it."""

    REGISTRY: ClassVar[Registry]

    def with_values(self, values: Mapping[str, Any]) -> Settings:
        """A copy with `values` (field name -> value, possibly strings from a search or a command line)
        applied; an unknown field is a UserError, not a silent default."""
        hints = typing.get_type_hints(type(self))
        fields = {f.name for f in dataclasses.fields(self)}
        changes = {}
        for name, value in values.items():
            if name not in fields:
                raise UserError(f"{self.name()} has no setting {name!r}; it has: {', '.join(sorted(fields)) or 'none'}")
            changes[name] = coerce(value, hints[name], f"{self.name()}.{name}")
        return dataclasses.replace(self, **changes)

    def check(self) -> None:
        """Raise a UserError for values that cannot describe a run (e.g. a non-positive temperature)."""

    @classmethod
    def name(cls) -> str:
        return next((name for name in cls.REGISTRY.names() if cls.REGISTRY.get(name).Config is cls), cls.__name__)

    def described(self) -> dict:
        """The settings as plain data with the name they are registered by (their fields alone do not say it)."""
        return {"name": self.name(), **dataclasses.asdict(self)}


def coerce(value: Any, annotation: Any, label: str) -> Any:
    """`value` as the field's type: float, int, str, a tuple of str (comma-separated in a string), or an optional
    one of those (None, or 'none' in a string)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation):
        if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
            return None
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        origin = typing.get_origin(annotation)
    try:
        if origin is tuple:
            return decode_layers(value) if isinstance(value, str) else tuple(str(v) for v in value)
        if annotation in (int, float, str):
            typed = annotation(value)
            if annotation is float and not math.isfinite(typed):
                raise UserError(f"{label} must be a finite number, got {value!r}")
            return typed
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{label} must be {getattr(annotation, '__name__', annotation)}, got {value!r}") from None
    return value
