"""The confirmation's race (`search.race`): its looks and spending by hand, the words it reports, and by simulation
against a known truth the error rates it promises, whole races, every look counted."""
from __future__ import annotations

import math

import pytest

from bench.tie_rule import race_rates
from search import race, stats, ties
from search.report import confirmation_analysis, confirmation_text
from search.state import ConfirmBatch, ConfirmPlan

SEEDS = list(range(1, 9))


def test_the_looks_spend_alpha_over_the_planned_rounds():
    """N = 3 first seeds, up to M = 8: the first look spends 3/8 of α, each of the five later ones 1/8."""
    spent = [race.look_alpha(n, 3, 8) for n in range(3, 9)]
    assert spent == pytest.approx([0.05 * 3 / 8] + [0.05 / 8] * 5) and sum(spent) == pytest.approx(0.05)
    assert race.look_alpha(3, 3, 3) == pytest.approx(0.05)  # M = N: one look at α


def paired(rows: dict[str, list[float]]) -> dict[str, dict[int, float]]:
    return {key: dict(zip(SEEDS, values)) for key, values in rows.items()}


def test_a_race_drops_the_worse_asks_the_undecided_for_a_seed_and_stops_at_m():
    """After 3 seeds `low` is far below the rest: worse, it stops. `a` and `b` are within noise and undecided: the
    race asks for their seed 4 only; at M = 4 it ends with them inconclusive."""
    values = paired({"a": [80.0, 81.0, 79.5, 80.2], "b": [79.8, 80.6, 79.9, 80.1], "low": [60.0, 61.0, 60.5]})
    first = race.run({k: dict(list(v.items())[:3]) for k, v in values.items()}, list(values), SEEDS, 3, 4, 0.1)
    assert first.wanted == [("a", 4), ("b", 4)] and first.decisions["low"].word == stats.WORSE
    assert first.decisions["low"].alpha == pytest.approx(0.05 * 3 / 4) and not first.finished
    done = race.run(values, list(values), SEEDS, 3, 4, 0.1)
    assert done.finished and len(done.looks) == 2 and done.best == "a"
    assert {k: d.word for k, d in done.decisions.items()} == {"low": "worse", "a": "inconclusive",
                                                              "b": "inconclusive"}
    assert done.contenders() == ["a", "b"] and done.decisions["a"].seeds == 4
    (mean, low, high), look = done.interval("b", "a")
    assert look.seeds == 4 and low < mean < high and low < 0 < high
    assert done.interval("low", "a")[1].seeds == 3  # its last look with `a` was the first


def test_a_race_declares_equivalence_within_the_margin_and_a_winner_when_everything_else_is_worse():
    close = paired({"a": [80.0, 81.0, 79.0], "b": [80.1, 81.05, 79.0]})  # paired differences 0.1, 0.05, 0
    decided = race.run(close, list(close), SEEDS, 3, 3, margin=1.0)
    assert {k: d.word for k, d in decided.decisions.items()} == {"a": "equivalent", "b": "equivalent"}
    undecided = race.run(close, list(close), SEEDS, 3, 3, margin=0.05)
    assert {d.word for d in undecided.decisions.values()} == {"inconclusive"}
    apart = paired({"a": [80.0, 81.0, 79.0], "b": [75.0, 76.2, 73.9], "c": [70.0, 71.1, 68.8]})
    won = race.run(apart, list(apart), SEEDS, 3, 8, margin=1.0)
    assert {k: d.word for k, d in won.decisions.items()} == {"a": "better", "b": "worse", "c": "worse"}
    assert won.finished and len(won.looks) == 1, "decided at the first look: no more seeds"


def test_one_seed_measures_nothing_so_the_race_asks_everyone_for_a_second():
    one = race.run(paired({"a": [80.0], "b": [79.0]}), ["a", "b"], SEEDS, 1, 3, 1.0)
    assert one.wanted == [("a", 2), ("b", 2)] and one.decisions == {}
    failed = race.run({"a": {1: 80.0, 2: 81.0}, "b": {1: None, 2: None}}, ["a", "b"], SEEDS, 2, 2, 1.0)
    assert failed.decisions["b"].word == "inconclusive" and failed.finished  # no result: not judged


def plan_of(values: dict[str, list[float]], first: int, most: int, baselines=("control",)) -> ConfirmPlan:
    plan = ConfirmPlan(data="full", first=first, most=most, candidates=[
        {"key": k, "label": k, "baseline": k in baselines, "description": "d", "config": {}, "search_trial": None,
         "search_val": None} for k in values])
    for key, accs in values.items():
        for seed, acc in zip(SEEDS, accs):
            plan.record(key, seed, {"state": "complete", "trial": "t", "reason": "",
                                    "metrics": {"student_test_acc": acc}})
    plan.seeds = SEEDS[:max(len(v) for v in values.values())]
    plan.batches = [ConfirmBatch("confirm-1", [(k, s) for k in values for s in plan.seeds[:first]], done=True)]
    return plan


def test_the_report_speaks_in_four_words_with_the_margin_and_the_seeds_it_would_take():
    """Fractions of accuracy. After 3 seeds the top two stay undecided (1 point apart, noise ~1 point) and race on
    alone to seed 4; `far` is worse at the first look."""
    plan = plan_of({"control": [0.800, 0.812, 0.791, 0.805], "top1": [0.815, 0.806, 0.812, 0.799],
                    "far": [0.60, 0.61, 0.59]}, first=3, most=4)
    plan.batches.append(ConfirmBatch("confirm-2", [("control", 4), ("top1", 4)], done=True))
    analysis = confirmation_analysis(plan, 0.01)
    words = {c["key"]: c["decision"] for c in analysis["configs"]}
    assert words == {"control": "inconclusive", "top1": "inconclusive", "far": "worse"}
    assert [c["runs"] for c in analysis["configs"]] == [4, 4, 3] and analysis["runs"] == 11
    text = confirmation_text(analysis, markdown=False)
    assert "Seeds: 3 paired seeds each, then one more a round for the configurations still undecided, up to 4: " \
           "control 4, top1 4, far 3; 11 runs, against 12 for 4 seeds each (92%)." in text
    assert "Verdicts (margin δ = ±1 point)" in text
    verdict = {c["key"]: c for c in analysis["comparisons"]}
    assert verdict["far"]["word"] == "worse" and verdict["far"]["verdict"].startswith("far vs the control: worse, by")
    assert verdict["top1"]["word"] == "inconclusive"
    assert "paired seeds in all would decide ±1 point" in verdict["top1"]["verdict"]
    assert verdict["top1"]["difference"]["n"] == 4 and verdict["far"]["difference"]["n"] == 3
    assert "The seeds cannot separate control from top1, the best confirmed mean; undecided: about" in text
    assert text.rstrip().endswith("Worse than it: far.")


def test_the_four_words_read_one_interval():
    def word(low: float, high: float, margin: float = 0.01) -> str:
        return stats.reading(stats.Estimate((low + high) / 2, 0.01, low, high, 3), margin)

    assert word(0.001, 0.02) == "better" and word(-0.02, -0.001) == "worse"
    assert word(-0.01, 0.01) == "equivalent" and word(-0.0101, 0.005) == "inconclusive"
    assert word(0.0, 0.02) == "inconclusive" and stats.reading(stats.estimate([0.5]), 0.01) == "inconclusive"
    assert stats.margin_text(0.01) == "±1 point" and stats.margin_text(0.005) == "±0.5 points"
    line = stats.verdict("λ=0.3", "the control", stats.Estimate(0.001, 0.004, -0.004, 0.006, 5), 0.01)
    assert line == "λ=0.3 vs the control: equivalent within ±1 point (+0.10 points, 95% CI −0.40 to +0.60, 5 paired " \
                   "seeds)"


def test_with_equal_configurations_a_race_says_better_or_worse_in_at_most_5_percent_of_races():
    """5 equal configurations, seeds 3 → 8, δ = 1 seed sd, 600 races: every false "better" or "worse" of any look
    counts once per race. Measured 4.2%; spending α at every look instead gives 16% (and fails)."""
    rates = race_rates([0.0] * 5, 3, 8, 1.0, 600, seed=3)
    assert rates["false_order"] <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 600), rates
    assert rates["runs"] <= 5 * 8


def test_a_difference_of_exactly_delta_is_called_equivalent_in_at_most_5_percent_of_races():
    """Two configurations δ apart (seed sd δ/2, seeds 3 → 8), 1,000 races: the boundary TOST guards."""
    rates = race_rates([0.0, -1.0], 3, 8, 1.0, 1000, sd=0.5, seed=4)
    assert rates["false_equivalent"] <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 1000), rates
    clear = race_rates([0.0, 0.0], 3, 8, 1.0, 200, sd=0.2, seed=5)
    assert clear["equivalent"] >= 0.9 and clear["runs"] < 2 * 8, clear  # a clear equivalence stops early


def test_the_race_and_the_search_rule_agree_where_they_must():
    """Whatever the race calls worse, MCB at the same level leaves out too: the race's set is never smaller."""
    values = paired({"a": [80.0, 81.0, 79.5], "b": [79.0, 80.1, 78.4], "c": [77.0, 78.2, 76.1]})
    contest = race.run(values, list(values), SEEDS, 3, 3, 1.0)
    kept = ties.mcb(values).kept
    assert set(kept) <= set(contest.contenders())


def test_an_unfinished_race_or_one_without_noise_reports_without_guessing():
    """A summary read mid-race (`bench.confirmation_table` reads any record) names the undecided as undecided; two
    seeds of two configurations measure no noise ((2−1)(2−1) = 1 degree of freedom), and the verdict says so."""
    plan = plan_of({"control": [0.80, 0.81, 0.79], "top1": [0.81, 0.80, 0.82], "top2": [0.60, 0.61, 0.59]}, 3, 8)
    analysis = confirmation_analysis(plan, 0.01)
    assert not analysis["finished"] and analysis["ties"]["undecided"] == ["top1", "control"]
    assert analysis["ties"]["worse"] == ["top2"] and "The race is not finished" in confirmation_text(analysis)
    bare = plan_of({"control": [0.80, 0.81], "top1": [0.82, 0.84]}, 2, 2)
    analysis = confirmation_analysis(bare, 0.01)
    (comparison,) = analysis["comparisons"]
    assert comparison["verdict"] == ("top1 vs the control: inconclusive: 2 paired seeds, too few to measure the seed "
                                     "noise (its pooled estimate needs at least 2 degrees of freedom: more seeds or "
                                     "more configurations)")
    assert analysis["ties"] is None and comparison["difference"]["mean"] == pytest.approx(0.025)
    alone = plan_of({"control": [0.80, 0.81, 0.79]}, 3, 3)
    assert confirmation_analysis(alone, 0.01)["ties"] is None  # one configuration: nothing to separate


def test_a_configuration_without_results_is_not_judged_nor_raced_on():
    values = {"a": {1: 0.80, 2: 0.81, 3: 0.79}, "b": {1: 0.70, 2: 0.71, 3: 0.69}, "c": {1: 0.79, 2: 0.8, 3: 0.8},
              "gone": {1: None, 2: None, 3: None}}
    contest = race.run(values, list(values), SEEDS, 3, 3, 0.001)
    assert contest.unjudged() == ["gone"] and "gone" not in contest.contenders()
    assert contest.decisions["gone"] == race.Decision("inconclusive", 3, pytest.approx(0.05), judged=False)
    assert contest.decisions["b"].word == "worse"
