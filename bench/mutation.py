"""Mutation testing of the core: which small plausible bug would the fast tests miss?

mutmut 3 puts one small change at a time into the modules that decide a result (the losses and teacher objectives,
the confirmation's statistics, the pick and tie rules, the strategies and ASHA's window, data splits and CIFAR
verification, the teacher cache key) and runs the fast tests that reach the changed function. A mutant no test
fails on "survived": a bug the suite would let through. The modules and tests are `[tool.mutmut]` in pyproject.toml.

Some mutants cannot change any result (a default no caller uses, `inplace=None` for `inplace=False`). Those are
listed in `bench/mutation_equivalents.json`, each with the reason, matched by the function and the changed lines (so
a renumbered mutant still matches, and a changed function's entry stops matching). The score per module is the
mutants killed (a failing test, or a hang past the time limit) over the mutants that are not equivalent.

    python -m pip install mutmut==3.8.1
    python -m bench.mutation --fresh          # every mutant again (about an hour on 2 cores)
    python -m bench.mutation --survivors      # the last run's survivors again (and changed functions' mutants)
    python -m bench.mutation --report-only    # the report of the last run, from mutants/
    python -m bench.mutation --equivalent NAME "why"   # record a surviving mutant as equivalent, with the reason
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from distill.cli import ArgumentParser, run_cli
from distill.errors import UserError

REPO = Path(__file__).resolve().parents[1]
MUTANTS = REPO / "mutants"
EQUIVALENTS = REPO / "bench" / "mutation_equivalents.json"
DETECTED = {"killed", "timeout", "segfault"}  # the tests noticed: a failure, a hang, a crash


@dataclass(frozen=True)
class Mutant:
    name: str  # mutmut's key, e.g. search.stats.x_estimate__mutmut_5
    module: str  # the source file, e.g. search/stats.py
    status: str  # mutmut's word: killed, survived, no tests, timeout, ...
    diff: str

    @property
    def function(self) -> str:
        return self.name.rsplit("__mutmut_", 1)[0]

    @property
    def change(self) -> list[str]:
        """The removed and added lines of the mutant's diff, stripped: what identifies it across renumbering."""
        return [line[0] + " " + line[1:].strip() for line in self.diff.splitlines()
                if line[:1] in ("+", "-") and not line.startswith(("+++", "---"))]


def configured_modules() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]
    return list(config["only_mutate"])


def run_mutmut(max_children: int, log: Path, names: Sequence[str] = ()) -> float:
    """`mutmut run` (of `names` alone when given), its redrawn progress into `log`, a line of ours every 30 s; the
    seconds it took."""
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children),
                                    *names], cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        done = threading.Event()

        def progress() -> None:
            while not done.wait(30):
                counts = re.findall(r"(\d+)/(\d+) ", log.read_text(errors="replace")[-400:])
                if counts:
                    print(f"mutants: {counts[-1][0]} of {counts[-1][1]} tested, "
                          f"{(time.monotonic() - started) / 60:.0f} min", flush=True)

        threading.Thread(target=progress, daemon=True).start()
        code = process.wait()
        done.set()
    if code != 0:
        raise UserError(f"mutmut run failed (exit {code}); its output is in {log}")
    return time.monotonic() - started


def collected(modules: Sequence[str]) -> list[Mutant]:
    """Every mutant of `modules` with its status, read from mutmut's records under mutants/."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    mutants = []
    for module in modules:
        meta = MUTANTS / f"{module}.meta"
        if not meta.is_file():
            raise UserError(f"{meta} is missing: run `python -m bench.mutation` first")
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in codes.items():
            status = status_by_exit_code[code]
            diff = "" if status in DETECTED else get_diff_for_mutant(name, path=module)
            mutants.append(Mutant(name, module, status, diff))
    return mutants


def equivalents() -> list[dict]:
    return json.loads(EQUIVALENTS.read_text()) if EQUIVALENTS.is_file() else []


def is_equivalent(mutant: Mutant, known: Sequence[dict]) -> dict | None:
    return next((e for e in known if e["function"] == mutant.function and e["change"] == mutant.change), None)


def mark_equivalent(name: str, why: str) -> dict:
    """Record mutant `name` (of the last run) in the equivalents file with the reason it cannot change a result."""
    from mutmut.mutation.diff_apply import find_mutant, get_diff_for_mutant

    try:
        module = str(find_mutant(name).path)
    except Exception as err:  # mutmut raises several kinds for an unknown name
        raise UserError(f"no mutant {name!r} in the last run ({err})") from None
    mutant = Mutant(name, module, "survived", get_diff_for_mutant(name, path=module))
    entry = {"function": mutant.function, "change": mutant.change, "why": why}
    known = [e for e in equivalents() if not is_equivalent(mutant, [e])]
    EQUIVALENTS.write_text(json.dumps([*known, entry], indent=1, ensure_ascii=False) + "\n")
    return entry


def report(mutants: Sequence[Mutant], seconds: float | None, tested: int | None = None) -> str:
    """Markdown: a row per module and the total, then every surviving mutant that is not shown equivalent."""
    known = equivalents()
    rows, survivors = [], []
    totals: Counter = Counter()
    for module in dict.fromkeys(m.module for m in mutants):
        counts: Counter = Counter()
        for mutant in (m for m in mutants if m.module == module):
            counts["mutants"] += 1
            if mutant.status in DETECTED:
                counts["killed"] += 1
            elif is_equivalent(mutant, known):
                counts["equivalent"] += 1
            else:
                counts[mutant.status] += 1
                survivors.append(mutant)
        totals.update(counts)
        rows.append((module, counts))
    rows.append(("**all**", totals))
    lines = ["| module | mutants | killed | equivalent | survived | no test reaches it | score |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for module, c in rows:
        judged = c["mutants"] - c["equivalent"]
        score = f"{100 * c['killed'] / judged:.1f}%" if judged else "—"
        lines.append(f"| {module} | {c['mutants']} | {c['killed']} | {c['equivalent']} | {c['survived']} | "
                     f"{c['no tests']} | {score} |")
    other = sum(v for k, v in totals.items() if k not in {"mutants", "killed", "equivalent", "survived", "no tests"})
    if other:
        lines.append(f"\n{other} mutants ended otherwise ({dict(totals)}).")
    if seconds is not None:
        again = f", {tested} survivors of the last run among them" if tested else ""
        lines.append(f"\nThis run took {seconds / 60:.1f} min{again}.")
    stale = [e for e in known if not any(is_equivalent(m, [e]) for m in mutants)]
    if stale:
        lines.append(f"\n{len(stale)} entries of {EQUIVALENTS.name} match no mutant now (the code changed): "
                     + ", ".join(e["function"] for e in stale))
    lines.append(f"\n{len(survivors)} surviving mutants not shown equivalent:\n")
    for mutant in survivors:
        lines.append(f"- `{mutant.name}` ({mutant.status}): " + "; ".join(f"`{c}`" for c in mutant.change))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bench.mutation", description=__doc__)
    parser.add_argument("--fresh", action="store_true", help="delete mutants/ first, so every mutant is tested again")
    parser.add_argument("--survivors", action="store_true",
                        help="test again only the mutants the last run left alive (after tests were added)")
    parser.add_argument("--report-only", action="store_true", help="report the last run without running mutmut")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    parser.add_argument("--equivalent", nargs=2, metavar=("MUTANT", "WHY"),
                        help="record a surviving mutant of the last run as equivalent, and why; nothing runs")
    args: argparse.Namespace = parser.parse_args(argv)
    os.chdir(REPO)  # mutmut reads its configuration and its records relative to the working directory
    if args.equivalent:
        print(json.dumps(mark_equivalent(*args.equivalent), ensure_ascii=False))
        return 0
    if args.max_children < 1:
        raise UserError(f"--max-children must be at least 1, got {args.max_children}")
    if sum((args.fresh, args.survivors, args.report_only)) > 1:
        raise UserError("choose one of --fresh, --survivors and --report-only")
    seconds, names = None, []
    if not args.report_only:
        if shutil.which("mutmut") is None:
            raise UserError("mutmut is not installed: python -m pip install mutmut==3.8.1")
        if args.fresh:
            shutil.rmtree(MUTANTS, ignore_errors=True)
        MUTANTS.mkdir(exist_ok=True)
        seconds = run_mutmut(args.max_children, MUTANTS / "run.log")  # new mutants of changed functions
        if args.survivors:
            known = equivalents()
            names = [m.name for m in collected(configured_modules())
                     if m.status not in DETECTED and not is_equivalent(m, known)]
            seconds += run_mutmut(args.max_children, MUTANTS / "survivors.log", names) if names else 0.0
    text = report(collected(configured_modules()), seconds, len(names) or None)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
