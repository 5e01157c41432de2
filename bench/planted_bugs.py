"""The bugs a reviewer planted that the suite once let through (issue 33), two only data-parallel tests see, and the
statistics' rules broken the way they once were (issue 34), planted again one at a time.

Each is a small plausible change to one line of the committed code. It is put into a fresh `git worktree` of HEAD
(the working tree's tests copied over), and the tests of the touched module run; a bug is caught when they fail.
`bench/mutation.py` asks the same question of thousands of generated changes; these are the hand-picked ones.

    python -m bench.planted_bugs            # about five minutes on 2 cores
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from distill.cli import ArgumentParser, run_cli

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bug:
    name: str
    path: str
    line: str  # the committed text, found exactly once
    planted: str  # what replaces it
    tests: tuple[str, ...]  # pytest arguments: the touched module's tests


UNTRAINED = ('__import__("distill.models", fromlist=["m"]).weights_bytes(__import__("distill.models", '
             'fromlist=["m"]).create(job.arch, splits.num_classes), arch=job.arch)')
BUGS = (
    Bug("MIMKD's global term with its sign flipped", "distill/losses/mimkd.py",
        'terms["mimkd_global"] = -cfg.beta_global * mi', 'terms["mimkd_global"] = cfg.beta_global * mi',
        ("tests/test_distillers.py", "tests/test_losses.py")),
    Bug("MIMKD's β_local replaced by β_global", "distill/losses/mimkd.py",
        'terms["mimkd_local"] = -cfg.beta_local * local.mean()', 'terms["mimkd_local"] = -cfg.beta_global * local.mean()',
        ("tests/test_distillers.py", "tests/test_losses.py")),
    Bug("the teacher trial's checkpoint holding untrained weights", "trainables/teacher.py",
        "common.TEACHER_FILE: run.weights_bytes(),", f"common.TEACHER_FILE: {UNTRAINED},",
        ("tests/test_trainables.py", "-k", "checkpoint_holds_the_trained_weights")),
    Bug("the tie spread without its sqrt(1/n_a + 1/n_b) factor", "search/ties.py",
        "return self.noise.sd * math.sqrt(1 / self.counts[i] + 1 / self.counts[j])", "return self.noise.sd",
        ("tests/test_confirm.py", "tests/test_ties.py")),
    Bug("--asha-window averaging one epoch too many", "search/smoothed_asha.py",
        "if e <= epoch][-self.window:]", "if e <= epoch][-self.window - 1:]",
        ("tests/test_replay.py", "tests/test_strategies.py")),
    Bug("the md5 check applied to the first CIFAR file only", "distill/data/cifar.py",
        "        for name, expected in layout.files:\n            actual",
        "        for name, expected in layout.files[:1]:\n            actual", ("tests/test_data.py",)),
    Bug("the tie boundary <= made <", "search/ties.py",
        "kept = {i for i in judged if upper[i] >= 0}", "kept = {i for i in judged if upper[i] > 0}",
        ("tests/test_confirm.py",)),
    # Issue 34: the rules that promise an error rate, each broken the way the old code was.
    Bug("the tie constant the normal 1.96 (the old rule)", "search/ties.py",
        "constant[i] = many_to_one_quantile(lambdas, m.noise.degrees, alpha)", "constant[i] = 1.96",
        ("tests/test_ties.py",)),
    Bug("the race spending the whole α at every look", "search/race.py",
        "return alpha * (first if seeds <= first else 1) / most", "return alpha", ("tests/test_race.py",)),
    Bug("equivalence judged by the mean alone, not its interval", "search/race.py",
        "if below and high <= margin and low >= -margin:", "if abs(difference) <= margin:", ("tests/test_race.py",)),
    Bug("seeds shared by every configuration left unpaired", "search/ties.py",
        "noise = _noise(runs, [k for k in judged if k not in collapsed], _paired_seeds(runs, judged))",
        "noise = _noise(runs, [k for k in judged if k not in collapsed], None)",
        ("tests/test_confirm.py", "tests/test_ties.py")),
    # Two the mutation run leaves to tests/test_distributed.py (two gloo workers; too slow to run per mutant).
    Bug("a data-parallel MCMI teacher's centroids from its own shard only", "distill/teachers/mcmi.py",
        "context.num_classes, across_workers=True)", "context.num_classes, across_workers=False)",
        ("tests/test_distributed.py",)),
    Bug("class means that add the workers' counts but not their sums", "distill/losses/cmi.py",
        "distributed.sum_across_workers(sums, counts)", "distributed.sum_across_workers(counts)",
        ("tests/test_distributed.py",)),
)


def caught(bug: Bug, scratch: Path) -> tuple[bool, str]:
    """Plant `bug` in a worktree of HEAD under `scratch` and run its tests: (caught, pytest's last line)."""
    tree = scratch / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(tree), "HEAD"], check=True)
    try:
        shutil.rmtree(tree / "tests")
        shutil.copytree(REPO / "tests", tree / "tests", ignore=shutil.ignore_patterns("__pycache__"))
        source = (tree / bug.path).read_text()
        if source.count(bug.line) != 1:
            return False, f"the line to change is not in {bug.path} once: the code moved, update this bug"
        (tree / bug.path).write_text(source.replace(bug.line, bug.planted))
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m",
                                 "not slow", *bug.tests], cwd=tree, capture_output=True, text=True)
        return result.returncode == 1, (result.stdout.strip().splitlines() or ["(no output)"])[-1]
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bench.planted_bugs", description=__doc__)
    parser.parse_args(argv)
    missed = 0
    print("| bug | caught | the tests' last line | seconds |\n|---|---|---|---:|")
    for bug in BUGS:
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as scratch:
            found, last = caught(bug, Path(scratch))
        missed += not found
        print(f"| {bug.name} | {'yes' if found else '**no**'} | {last} | {time.monotonic() - started:.0f} |",
              flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
