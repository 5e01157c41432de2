"""Seed statistics for the confirmation stage: means, Student-t intervals, paired differences, verdicts.

Pure functions of plain numbers (scipy's t distribution, no Ray or MLflow), so every figure in a
report can be checked by hand. Accuracies come in as fractions; verdicts speak in percentage points.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

from search.ties import seeds_to_decide

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


BETTER, WORSE, EQUIVALENT, INCONCLUSIVE = "better", "worse", "equivalent", "inconclusive"
WORDS = (BETTER, WORSE, EQUIVALENT, INCONCLUSIVE)  # every verdict is one of these


def reading(difference: Estimate, margin: float) -> str:
    """The interval's word: better (above 0), worse (below 0), equivalent (inside ±margin: two one-sided tests at
    the interval's level), else inconclusive (it crosses 0 and reaches past ±margin, or there is no interval)."""
    if difference.n < 2 or not math.isfinite(difference.low):
        return INCONCLUSIVE
    if difference.low > 0:
        return BETTER
    if difference.high < 0:
        return WORSE
    if -margin <= difference.low and difference.high <= margin:
        return EQUIVALENT
    return INCONCLUSIVE


def margin_text(margin: float) -> str:
    """±1 point, ±0.5 points: a margin (a fraction) in accuracy points."""
    value = f"{100 * margin:g}"
    return f"\u00b1{value} point{'' if value == '1' else 's'}"


def level_text(confidence: float) -> str:
    """95% CI, 98.1% CI: an interval's level, as short as it stays exact to a tenth."""
    return f"{100 * confidence:.1f}".removesuffix(".0") + "% CI"


def decide_seeds(difference: Estimate, margin: float, configurations: int = 2) -> int | None:
    """About how many paired seeds in all would decide a `margin` difference at the sd of these paired differences,
    with intervals over `configurations` (`ties.seeds_to_decide`); None when they cannot say."""
    if difference.n < 2:
        return None
    return seeds_to_decide(difference.sd, margin, 1 - difference.confidence, configurations)


def verdict(label: str, baseline_label: str, difference: Estimate, margin: float, paired: bool = True,
            configurations: int = 2) -> str:
    """One line: `label` against `baseline_label` in one of the four words, with the difference's interval (over
    paired seeds unless `paired` is False; held together over `configurations`); an inconclusive one says about how
    many paired seeds would decide it."""
    seeds = f"{difference.n} {'paired ' if paired else ''}seed{'s' if difference.n != 1 else ''}"
    word = reading(difference, margin)
    head = f"{label} vs {baseline_label}: {word}"
    if difference.n < 2:
        return f"{head}: {seeds} (an interval needs at least 2)"
    if not math.isfinite(difference.low):
        return (f"{head}: {seeds}, too few to measure the seed noise (its pooled estimate needs at least 2 degrees "
                "of freedom: more seeds or more configurations)")
    interval = f"{level_text(difference.confidence)} {points(difference.low)} to {points(difference.high)}"
    if word in (BETTER, WORSE):
        return f"{head}, by {points(difference.mean)} points ({interval}, {seeds})"
    if word == EQUIVALENT:
        return f"{head} within {margin_text(margin)} ({points(difference.mean)} points, {interval}, {seeds})"
    needed = decide_seeds(difference, margin, configurations)
    more = (f"about {needed} paired seeds in all would decide {margin_text(margin)}" if needed
            else f"more than 10,000 paired seeds would be needed to decide {margin_text(margin)}")
    return f"{head} ({points(difference.mean)} points, {interval}, {seeds}): {more}"
