"""Search a teacher objective's settings by the accuracy of the student distilled from the teacher it trains:
`--objective label_smoothing` (ε), `mcmi` (λ), or any objective registered in `distill.teachers` with a space in
`spaces/`.

Each trial trains its own teacher with the objective (by default fine-tuning the cached MLL teacher; `--teacher-start
scratch` trains a new one), then distils a student from it; ASHA judges the students only. The confirmation compares
the best settings with the equal-budget control (the same teacher stage with plain CE) and with the student of the
untouched MLL teacher, over paired seeds.
Offline demo (2 CPU cores, a few minutes):  python -m search.teacher --objective label_smoothing --preset digits
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace

from distill.cli import ArgumentParser, run_cli
from search.definition import SearchDefinition
from search.method_options import add_range_option, chosen_space
from search.runner import run_search
from search.teacher_search import add_stage_options, off_control, teacher_definition
from spaces.method import MethodSpace, method_spaces


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("teacher objective search")
    group.add_argument("--objective", required=True, choices=sorted(method_spaces("teacher")),
                       help="the teacher objective whose settings are searched")
    add_range_option(group, method_spaces("teacher"))
    add_stage_options(parser)


def definition_for(space: MethodSpace) -> SearchDefinition:
    return teacher_definition(f"teacher_{space.method}", f"search.teacher --objective {space.method}", __doc__, space,
                              lambda args: chosen_space(space, args), add_options, off_control(space))


def run(argv: Sequence[str] | None = None) -> int:
    """Read --objective first, then run that objective's search with the whole command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    found = method_spaces("teacher")
    probe = ArgumentParser(prog="python -m search.teacher", add_help=False)
    probe.add_argument("--objective", choices=sorted(found))
    known, _ = probe.parse_known_args(argv)
    if known.objective is None:  # --help, or the usage error that names --objective
        return run_search(replace(definition_for(next(iter(found.values()))), command="search.teacher"), argv)
    return run_search(definition_for(found[known.objective]), argv)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
