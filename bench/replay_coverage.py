"""Do the replay's 95% intervals hold? Simulated grids from known means and seed noise, against the expected regret.

  python -m bench.replay_coverage --grids 300          # about 1.5 minutes on 2 cores

Each simulated grid draws six configurations' final values (means 0, −0.5, −1, −1.5, −2, −3 points, seed noise
1 point) for S seeds; 48 one-seed searches on it (the seeds in turn) each pick the best configuration on their
own seed, the winner's curse a held-out score must see through. The estimand is the replay's expected mean held-out
regret over grids (3,000 grids). Per row: how often the interval covers it, for the replay's interval (seeds
resampled with their repeats, `search.grid_truth`) and for one from the repeats alone (the replay's old interval).
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from search.grid_truth import GridTruth, summary

MEANS = np.array([0.0, -0.5, -1.0, -1.5, -2.0, -3.0]) / 100
NOISE, REPEATS, EPSILON = 0.01, 48, 0.5


def simulated(rng: np.random.Generator, seeds: int) -> tuple[GridTruth, np.ndarray, np.ndarray]:
    """A recorded grid drawn from MEANS, and the picks (per repeat) and search seeds of 48 one-seed searches on it."""
    finals = MEANS[:, None] + NOISE * rng.normal(size=(len(MEANS), seeds))
    search_seeds = np.arange(REPEATS) % seeds
    return GridTruth(finals, tuple(range(seeds))), np.argmax(finals[:, search_seeds], axis=0)[:, None], search_seeds


def seed_draws(truth: GridTruth, picks: np.ndarray, seeds: np.ndarray, draws: int, seed: int) -> list[np.ndarray]:
    return [truth.regrets(picks, seeds, r.weights, r.repeats)[:, 0] for r in truth.resamples(seeds, draws, seed)]


def repeat_draws(truth: GridTruth, picks: np.ndarray, seeds: np.ndarray, draws: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [truth.regrets(picks, seeds, repeats=rng.integers(REPEATS, size=REPEATS))[:, 0] for _ in range(draws)]


INTERVALS: dict[str, Callable] = {"seeds with their repeats (the replay's)": seed_draws,
                                  "repeats alone (the old replay's)": repeat_draws}


def coverage(seeds: int, grids: int, draws: int = 300, seed: int = 0) -> dict[str, float]:
    """Per interval: the share of `grids` simulated grids whose 95% interval of the mean regret covers its
    expectation."""
    rng = np.random.default_rng(seed)
    expected = np.mean([summary(t.regrets(p, s)[:, 0], [], EPSILON)["mean_regret"]
                        for t, p, s in (simulated(rng, seeds) for _ in range(3000))])
    covered = dict.fromkeys(INTERVALS, 0)
    for index in range(grids):
        truth, picks, search_seeds = simulated(rng, seeds)
        point = truth.regrets(picks, search_seeds)[:, 0]
        for name, draw in INTERVALS.items():
            low, high = summary(point, draw(truth, picks, search_seeds, draws, index), EPSILON)["mean_regret_ci95"]
            covered[name] += low <= expected <= high
    return {name: count / grids for name, count in covered.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay_coverage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", type=int, default=300, help="simulated grids per row (default: 300)")
    args = parser.parse_args(argv)
    print("| seeds | " + " | ".join(INTERVALS) + " |\n|---|" + "---|" * len(INTERVALS))
    for seeds in (4, 8):
        found = coverage(seeds, args.grids)
        print(f"| {seeds} | " + " | ".join(f"{found[name]:.3f}" for name in INTERVALS) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
