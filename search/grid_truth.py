"""The ground truth a replay scores against: a recorded grid's final values per configuration and seed.

A simulated search that ran on seed s is scored on the other seeds (held out, as a fresh run of its pick would be),
and every interval resamples the grid's own seeds around the replay's repeats (a cluster bootstrap: a drawn seed
brings the truth it measures and the searches that ran on it), so the noise of the ground truth is in the interval,
not only the spread of the repeats. `stability` says how often a resample of the seeds keeps the recorded best the
best: a grid whose best is not stable cannot tell strategies apart, and a replay prints it beside every result.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALL_SEEDS = -1  # a repeat's search seed when it drew a seed per trial: scored on all seeds, none held out
DRAWS = 1000  # bootstrap resamples of the grid's seeds (and the repeats within them)


@dataclass(frozen=True)
class Resample:
    """One bootstrap draw: how often each seed was drawn, and the repeats drawn with them."""

    weights: np.ndarray
    repeats: np.ndarray


@dataclass(frozen=True)
class GridTruth:
    """finals[configuration, seed] (NaN where a configuration lacks a seed) and the seeds, in column order."""

    finals: np.ndarray
    seeds: tuple[int, ...]

    @classmethod
    def of(cls, curves: list[dict[int, list]]) -> GridTruth:
        """From each configuration's recorded runs (seed -> reports, the last one final)."""
        seeds = tuple(sorted({seed for runs in curves for seed in runs}))
        finals = np.array([[runs[s][-1].value if s in runs else np.nan for s in seeds] for runs in curves], dtype=float)
        return cls(finals, seeds)

    def column(self, seed: int) -> int:
        return self.seeds.index(seed)

    def truth(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Per configuration: the mean final value over the seeds (each counted `weights` times); NaN for a
        configuration with none."""
        return self.held_out(np.ones(len(self.seeds)) if weights is None else weights)[ALL_SEEDS]

    def held_out(self, weights: np.ndarray) -> np.ndarray:
        """[seed column + 1, configuration]: row s leaves seed s out; the last row (ALL_SEEDS) leaves none out."""
        present = ~np.isnan(self.finals)
        values = np.where(present, self.finals, 0.0)
        total, count = values @ weights, present @ weights
        totals = np.vstack([total[None, :] - weights[:, None] * values.T, total[None, :]])
        counts = np.vstack([count[None, :] - weights[:, None] * present.T, count[None, :]])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, totals / np.where(counts > 0, counts, 1.0), np.nan)

    def resamples(self, search_seeds: np.ndarray, draws: int = DRAWS, seed: int = 0) -> list[Resample]:
        """Cluster bootstrap draws: seeds with replacement; for each seed drawn, as many of its repeats as it has,
        with replacement (repeats that drew a seed per trial are resampled on their own)."""
        rng = np.random.default_rng(seed)
        columns = len(self.seeds)
        by_seed = {s: np.flatnonzero(search_seeds == s) for s in range(columns)}
        free = np.flatnonzero(search_seeds == ALL_SEEDS)
        found = []
        for _ in range(draws):
            drawn = rng.integers(columns, size=columns)
            repeats = [rng.choice(by_seed[s], size=len(by_seed[s])) for s in drawn if len(by_seed[s])]
            if len(free):
                repeats.append(rng.choice(free, size=len(free)))
            found.append(Resample(np.bincount(drawn, minlength=columns).astype(float),
                                  np.concatenate(repeats) if repeats else np.array([], dtype=int)))
        return found

    def regrets(self, picks: np.ndarray, search_seeds: np.ndarray, weights: np.ndarray | None = None,
                repeats: np.ndarray | None = None) -> np.ndarray:
        """Regret in accuracy points, [repeat, budget point]: the best held-out truth minus the held-out truth of the
        pick (`picks[repeat, point]`), each repeat scored without the seed it ran on; inf before any pick, NaN where
        a resample left no seed to score on."""
        repeats = np.arange(len(picks)) if repeats is None else repeats
        table = self.held_out(np.ones(len(self.seeds)) if weights is None else weights)
        truth = table[search_seeds[repeats]]  # [repeat, configuration]
        with np.errstate(invalid="ignore"):
            best = np.nanmax(np.where(np.isnan(truth), -np.inf, truth), axis=1)
        chosen = picks[repeats]
        picked = np.take_along_axis(truth, np.clip(chosen, 0, None), axis=1)
        found = np.where(chosen >= 0, 100 * (best[:, None] - picked), np.inf)
        return np.where(np.isfinite(best)[:, None], found, np.nan)

    def stability(self, draws: int = 2000, seed: int = 0) -> float:
        """P(the recorded best stays the best) over resamples of the seeds (the same seeds for every configuration)."""
        best = int(np.nanargmax(self.truth()))
        rng = np.random.default_rng(seed)
        columns = len(self.seeds)
        kept = 0
        for _ in range(draws):
            weights = np.bincount(rng.integers(columns, size=columns), minlength=columns).astype(float)
            truth = self.truth(weights)
            kept += int(np.nanargmax(np.where(np.isnan(truth), -np.inf, truth)) == best)
        return kept / draws


def mean_regret(values: np.ndarray) -> float | None:
    """The mean over repeats that could be scored; None while any has no pick yet (or none could be scored)."""
    scored = values[~np.isnan(values)]
    return None if len(scored) == 0 or np.isinf(scored).any() else float(scored.mean())


def within_share(values: np.ndarray, epsilon: float) -> float:
    """P(regret ≤ ε) over repeats that could be scored; a repeat without a pick yet is never within ε."""
    scored = values[~np.isnan(values)]
    return float(np.mean(scored <= epsilon + 1e-9)) if len(scored) else float("nan")


def summary(point: np.ndarray, draws: list[np.ndarray], epsilon: float) -> dict:
    """Mean regret and P(regret ≤ ε) of one budget point (`point`: per repeat) with percentile 95% intervals from the
    bootstrap `draws` (per draw: the drawn repeats' regrets)."""
    means = [m for m in (mean_regret(d) for d in draws) if m is not None]
    shares = [w for w in (within_share(d, epsilon) for d in draws) if np.isfinite(w)]
    point_mean = mean_regret(point)
    return {"mean_regret": point_mean,
            "mean_regret_ci95": [float(q) for q in np.percentile(means, [2.5, 97.5])]
            if means and point_mean is not None else None,
            "p_within_epsilon": within_share(point, epsilon),
            "p_within_epsilon_ci95": [float(q) for q in np.percentile(shares, [2.5, 97.5])] if shares else None}
