"""Print the confirmation of finished searches as BENCHMARKS.md shows it: the markdown table (students' test accuracy,
the teachers' accuracy, CMI, NLL, ECE and KL to the true posterior where known, mean ± sd over the paired seeds) and
the verdicts, recomputed from each search's own record (`STORAGE/NAME/kdtune-search.json`), read as plain JSON.

    python -m bench.confirmation_table results/ls-bcpd results/mcmi-bcpd
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from distill.cli import ArgumentParser, run_cli
from distill.errors import UserError
from search.report import confirmation_analysis, confirmation_text
from search.state import STATE_FILE, ConfirmPlan


def plan_of(folder: Path) -> ConfirmPlan:
    """The confirmation plan and results a search recorded (its batches are not needed here)."""
    try:
        saved = json.loads((folder / STATE_FILE).read_text())["confirm"]
        return ConfirmPlan(data=saved["data"], candidates=saved["candidates"], seeds=saved["seeds"],
                           results=saved["results"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{folder} holds no finished confirmation ({type(err).__name__}: {err})") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bench.confirmation_table", description=__doc__)
    parser.add_argument("searches", nargs="+", type=Path, help="search folders (STORAGE/NAME)")
    args: argparse.Namespace = parser.parse_args(argv)
    for folder in args.searches:
        print(f"## {folder.name}\n\n{confirmation_text(confirmation_analysis(plan_of(folder)))}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
