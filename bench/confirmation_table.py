"""Print the confirmation of finished searches as BENCHMARKS.md shows it: the markdown table (students' test accuracy,
the teachers' accuracy, CMI, NLL, ECE and KL to the true posterior where known, mean ± sd over the paired seeds) and
the verdicts, recomputed from each search's own record (`STORAGE/NAME/kdtune-search.json`, or a JSON file holding
its "confirm" part, as `bench/teacher_searches/` keeps them), read as plain JSON.

    python -m bench.confirmation_table results/ls-bcpd results/mcmi-bcpd
    python -m bench.confirmation_table bench/teacher_searches/ls-bcpd-confirmation.json
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from distill.cli import ArgumentParser, run_cli
from distill.errors import UserError
from search.options import MARGIN_POINTS
from search.report import confirmation_analysis, confirmation_text
from search.state import STATE_FILE, ConfirmPlan


def plan_of(source: Path) -> ConfirmPlan:
    """The confirmation plan and results a search recorded (its batches are not needed here)."""
    try:
        saved = json.loads((source / STATE_FILE if source.is_dir() else source).read_text())["confirm"]
        return ConfirmPlan(data=saved["data"], candidates=saved["candidates"], seeds=saved["seeds"],
                           results=saved["results"], first=int(saved.get("first", 0)), most=int(saved.get("most", 0)))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{source} holds no finished confirmation ({type(err).__name__}: {err})") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bench.confirmation_table", description=__doc__)
    parser.add_argument("searches", nargs="+", type=Path, help="search folders (STORAGE/NAME) or their records")
    parser.add_argument("--margin", type=float, default=MARGIN_POINTS, metavar="POINTS",
                        help=f"δ of the verdicts, in accuracy points (default: {MARGIN_POINTS:g})")
    args: argparse.Namespace = parser.parse_args(argv)
    for source in args.searches:
        print(f"## {source.name}\n\n{confirmation_text(confirmation_analysis(plan_of(source), args.margin / 100))}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
