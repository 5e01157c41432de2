"""Search a distiller's own knobs: `--method dkd` (beta, alpha, T), `crd` (weight, nce_t, nce_k), `fitnet` or
`at` (weight, layer). Each method's space is one module of `spaces/`, its published default tried first.

Each trial distils a student from the cached (or brought) MLL teacher with the method alone (or with the
methods --distiller names, which must include it); ASHA stops weak students early, and the confirmation
compares the best settings with the method's published default over paired seeds.
Offline demo (2 CPU cores, a few minutes):  python -m search.distiller --method dkd --preset digits
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from functools import partial

import trainables
from distill.cli import ArgumentParser, run_cli
from search.definition import Baseline, SearchDefinition
from search.method_options import add_range_option, chosen_space
from search.student_search import STUDENT_COLUMNS, inside, student_inputs
from search.runner import run_search
from search.tracking import label_for
from spaces.method import MethodSpace, method_space, method_spaces
from trainables.metrics import STUDENT_VAL_ACC


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("method search")
    group.add_argument("--method", required=True, choices=sorted(method_spaces()),
                       help="the distiller whose settings are searched")
    add_range_option(group, method_spaces())


def definition_for(space: MethodSpace) -> SearchDefinition:
    """The search over `space`: its ranges, and the point the method publishes for the teacher → student pair
    (`distill.losses.published`) first and as the baseline to beat."""
    method = space.method

    def points(args: argparse.Namespace) -> list[dict]:
        chosen, published = chosen_space(space, args), space.known_good(args.teacher, args.student)
        return [published] if inside(published, {chosen.key(k): r for k, r in chosen.ranges.items()}) else []

    def baselines(args: argparse.Namespace) -> tuple[Baseline, ...]:
        published = space.known_good(args.teacher, args.student)
        return (Baseline("published", f"published {method} ({label_for(published, space.label_names())})",
                         published, f"{method} at the values its paper and reference code publish for "
                         f"{args.teacher} → {args.student}"),)

    return SearchDefinition(
        name=f"distiller_{method}", command=f"search.distiller --method {method}", description=__doc__,
        add_options=add_options, space=lambda args: partial(method_space, space=chosen_space(space, args)),
        points=points, log_params=space.log_params(), trainable=trainables.student, trainable_inputs=student_inputs,
        columns=STUDENT_COLUMNS, plot_metrics=(STUDENT_VAL_ACC,),
        baselines=baselines,
        label_names=space.label_names(), distillers=(method,), searched=(method,),
    )


def run(argv: Sequence[str] | None = None) -> int:
    """Read --method first, then run that method's search with the whole command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    probe = ArgumentParser(prog="python -m search.distiller", add_help=False)
    probe.add_argument("--method", choices=sorted(method_spaces()))
    known, _ = probe.parse_known_args(argv)
    if known.method is None:
        return run_search(replace(definition_for(next(iter(method_spaces().values()))), command="search.distiller"),
                          argv)  # --help, or the usage error that names --method
    return run_search(definition_for(method_spaces()[known.method]), argv)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
