"""Seed statistics for the confirmation stage: means, Student-t intervals, paired differences, verdicts.

Pure functions of plain numbers (scipy's t distribution, no Ray or MLflow), so every figure in a
report can be checked by hand. Accuracies come in as fractions; verdicts speak in percentage points.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """The mean of `n` values with its sample standard deviation and two-sided Student-t interval.

    With fewer than two values the spread and the interval are unknown (NaN)."""

    mean: float
    sd: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "sd": self.sd, "ci_low": self.low, "ci_high": self.high, "n": self.n}


def estimate(values: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """Mean, sd (n - 1 in the denominator) and the t interval mean ± t(n-1) · sd / sqrt(n)."""
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, math.nan, 0, confidence)
    mean = math.fsum(values) / n
    if n == 1:
        return Estimate(mean, math.nan, math.nan, math.nan, 1, confidence)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = scipy_stats.t.ppf(0.5 + confidence / 2, df=n - 1) * sd / math.sqrt(n)
    return Estimate(mean, sd, mean - half, mean + half, n, confidence)


def paired_difference(
    values: Mapping[int, float], baseline: Mapping[int, float], confidence: float = CONFIDENCE
) -> Estimate:
    """The estimate of `values - baseline` over the seeds both have (seed s of one against seed s of the other)."""
    seeds = sorted(set(values) & set(baseline))
    return estimate([values[s] - baseline[s] for s in seeds], confidence)


def points(fraction: float) -> str:
    """An accuracy difference as signed percentage points: 0.0121 -> '+1.21'."""
    return f"{100 * fraction:+.2f}".replace("-", "\u2212")


def verdict(label: str, baseline_label: str, difference: Estimate) -> str:
    """One line saying whether `label` beats `baseline_label`, judged by the paired difference's interval.

    Significant only when the interval excludes zero strictly; an interval touching zero is no difference."""
    seeds = f"{difference.n} paired seed{'s' if difference.n != 1 else ''}"
    if difference.n < 2:
        return f"{label} vs {baseline_label}: cannot tell with {seeds} (a confidence interval needs at least 2)"
    level = f"{round(100 * difference.confidence)}% CI"
    interval = f"{points(difference.low)} to {points(difference.high)}"
    if difference.low > 0:
        return (f"{label} beats {baseline_label} by {points(difference.mean)} points "
                f"({level} {interval}, {seeds})")
    if difference.high < 0:
        return (f"{label} is worse than {baseline_label} by {points(difference.mean)} points "
                f"({level} {interval}, {seeds})")
    return (f"{label}: no significant difference from {baseline_label} "
            f"({points(difference.mean)} points, {level} {interval}, {seeds})")
