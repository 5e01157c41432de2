"""Flat names of a student's distillation settings, shared by the command line, search spaces and trial
configs: `distillers` ("kd+crd"; "none": CE only), `ce_weight`, and `<distiller>.<field>` (e.g. `dkd.beta`)
for any field of a distiller's config. One function applies them, so no layer names a method."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from distill.errors import UserError
from distill.losses import DISTILLERS, DistillerConfig
from distill.typed_settings import encode_layers

DISTILLERS_KEY = "distillers"
CE_WEIGHT_KEY = "ce_weight"
NO_DISTILLER = "none"


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
