"""The confirmation stage's statistics against values computed by hand, and the verdict at its boundaries."""
from __future__ import annotations

import math

import pytest

from search.stats import Estimate, estimate, paired_difference, points, verdict

# Student t quantiles t(0.975, df), from a printed table: df 1, 2, 4.
T_975 = {1: 12.7062047, 2: 4.30265273, 4: 2.77644511}


def test_estimate_of_three_values_by_hand():
    # mean 0.72; deviations -0.02, 0, +0.02 -> sd sqrt(0.0008 / 2) = 0.02; half-width 4.3027 * 0.02 / sqrt(3)
    found = estimate([0.70, 0.72, 0.74])
    half = T_975[2] * 0.02 / math.sqrt(3)
    assert found.n == 3 and found.mean == pytest.approx(0.72) and found.sd == pytest.approx(0.02)
    assert (found.low, found.high) == (pytest.approx(0.72 - half), pytest.approx(0.72 + half))
    assert half == pytest.approx(0.049683, abs=1e-6)


def test_estimate_of_two_and_five_values():
    two = estimate([1.0, 3.0])  # sd sqrt(2), half-width 12.706 * sqrt(2) / sqrt(2) = 12.706
    assert two.sd == pytest.approx(math.sqrt(2)) and two.low == pytest.approx(2 - T_975[1])
    five = estimate([2.0, 4.0, 4.0, 4.0, 6.0])  # mean 4, sd sqrt(8 / 4) = sqrt(2)
    assert five.high == pytest.approx(4 + T_975[4] * math.sqrt(2) / math.sqrt(5))


def test_estimate_with_too_few_values_has_no_spread():
    one = estimate([0.5])
    assert one.mean == 0.5 and one.n == 1 and math.isnan(one.sd) and math.isnan(one.low) and math.isnan(one.high)
    none = estimate([])
    assert none.n == 0 and math.isnan(none.mean)


def test_identical_values_give_a_zero_width_interval():
    flat = estimate([0.6, 0.6, 0.6])
    assert flat.sd == 0 and flat.low == pytest.approx(0.6) and flat.high == pytest.approx(0.6)


def test_paired_difference_pairs_by_seed_and_ignores_unpaired_seeds():
    config = {1: 0.75, 2: 0.71, 3: 0.74, 4: 0.9}
    baseline = {1: 0.73, 2: 0.70, 3: 0.71, 5: 0.1}
    diff = paired_difference(config, baseline)  # seeds 1..3: +0.02, +0.01, +0.03
    assert diff.n == 3 and diff.mean == pytest.approx(0.02) and diff.sd == pytest.approx(0.01)
    half = T_975[2] * 0.01 / math.sqrt(3)
    assert (diff.low, diff.high) == (pytest.approx(0.02 - half), pytest.approx(0.02 + half))
    # Pairing matters: the unpaired interval of the same numbers is far wider than the paired one.
    unpaired_half = T_975[2] * estimate([0.75, 0.71, 0.74]).sd / math.sqrt(3)
    assert half < unpaired_half


def test_points_are_signed_percentage_points():
    assert points(0.0121) == "+1.21" and points(-0.002) == "\u22120.20" and points(0.0) == "+0.00"


def make(mean: float, low: float, high: float, n: int = 3) -> Estimate:
    return Estimate(mean, 0.01, low, high, n)


@pytest.mark.parametrize("difference, expected", [
    (make(0.0121, 0.0043, 0.0199),
     "λ=0.31 vs the λ = 0 control: better, by +1.21 points (95% CI +0.43 to +1.99, 3 paired seeds)"),
    (make(-0.012, -0.02, -0.004),
     "λ=0.31 vs the λ = 0 control: worse, by \u22121.20 points (95% CI \u22122.00 to \u22120.40, 3 paired seeds)"),
    (make(0.002, -0.002, 0.006),
     "λ=0.31 vs the λ = 0 control: equivalent within ±1 point (+0.20 points, 95% CI \u22120.20 to +0.60, "
     "3 paired seeds)"),
    (make(0.002, -0.02, 0.024),  # sd of the paired differences 1 point: 18 seeds make the interval 1 point wide
     "λ=0.31 vs the λ = 0 control: inconclusive (+0.20 points, 95% CI \u22122.00 to +2.40, 3 paired seeds): about "
     "18 paired seeds in all would decide ±1 point"),
])
def test_verdict_wording(difference, expected):
    assert verdict("λ=0.31", "the λ = 0 control", difference, 0.01) == expected


def test_verdict_at_the_boundaries():
    # An interval that touches zero from either side is not better or worse; one just above zero is.
    assert "inconclusive" in verdict("a", "b", make(0.01, 0.0, 0.02), 0.01)
    assert "inconclusive" in verdict("a", "b", make(-0.01, -0.02, 0.0), 0.01)
    assert verdict("a", "b", make(0.01, 1e-9, 0.02), 0.01).startswith("a vs b: better")
    assert verdict("a", "b", make(-0.01, -0.02, -1e-9), 0.01).startswith("a vs b: worse")
    # An interval exactly on ±δ is equivalent; a hair past it is not.
    assert "equivalent" in verdict("a", "b", make(0.0, -0.01, 0.01), 0.01)
    assert "inconclusive" in verdict("a", "b", make(0.0, -0.01, math.nextafter(0.01, 1)), 0.01)
    assert ", 3 seeds)" in verdict("a", "b", make(0.0, -0.01, 0.02), 0.01, paired=False)  # a failed run unpaired them
    # One paired seed has no interval: say so instead of guessing.
    assert verdict("a", "b", Estimate(0.01, math.nan, math.nan, math.nan, 1), 0.01) == (
        "a vs b: inconclusive: 1 paired seed (an interval needs at least 2)")


def test_too_few_values_keep_the_confidence_asked_for_and_leave_every_spread_unknown():
    for values in ([], [0.5]):
        found = estimate(values, confidence=0.9)
        assert found.confidence == 0.9 and found.n == len(values)
        assert math.isnan(found.sd) and math.isnan(found.low) and math.isnan(found.high)
    assert estimate([0.5]).confidence == 0.95 and estimate([]).confidence == 0.95


def test_the_confidence_asked_for_sets_the_interval_and_travels_with_it():
    # t(0.95, 2) = 2.91998558: a 90% interval of three values with sd 0.02
    found = estimate([0.70, 0.72, 0.74], confidence=0.9)
    assert found.confidence == 0.9 and found.high == pytest.approx(0.72 + 2.91998558 * 0.02 / math.sqrt(3))
    diff = paired_difference({1: 0.75, 2: 0.71, 3: 0.74}, {1: 0.73, 2: 0.70, 3: 0.71}, confidence=0.9)
    assert diff.confidence == 0.9 and diff.high == pytest.approx(0.02 + 2.91998558 * 0.01 / math.sqrt(3))
    assert estimate([1.0, 2.0]).as_dict() == {"mean": 1.5, "sd": pytest.approx(math.sqrt(0.5)),
                                              "ci_low": pytest.approx(1.5 - T_975[1] * 0.5),
                                              "ci_high": pytest.approx(1.5 + T_975[1] * 0.5), "n": 2}
