"""`--range FIELD LOW HIGH`: what the searches of one method (`search.distiller --method`, `search.teacher
--objective`) share to narrow or widen the method's ranges."""
from __future__ import annotations

import argparse
from dataclasses import replace

from distill.errors import UserError
from spaces import Range
from spaces.method import MethodSpace


def add_range_option(group: argparse._ArgumentGroup, spaces: dict[str, MethodSpace]) -> None:
    fields = "; ".join(f"{name}: {', '.join(space.ranges)}" for name, space in spaces.items())
    group.add_argument("--range", nargs=3, action="append", default=[], metavar=("FIELD", "LOW", "HIGH"),
                       help=f"replace the range of one of the method's fields, same scale (repeatable); the fields "
                       f"ranged over: {fields}")


def chosen_space(space: MethodSpace, args: argparse.Namespace) -> MethodSpace:
    """The method's space with the user's `--range` overrides (same scale, new bounds)."""
    try:
        overrides = {field: replace(space.ranges[field], low=float(low), high=float(high)) if field in space.ranges
                     else Range(float(low), float(high)) for field, low, high in args.range}
    except ValueError:
        raise UserError(f"--range {' '.join(args.range[-1])}: LOW and HIGH must be numbers") from None
    return space.with_ranges(overrides)
