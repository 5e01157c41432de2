"""The strategy module's pure parts by hand: a strategy's checks at their boundaries, its label, the grid's values
(parsed, typed against each parameter, spaced across a range), and the samplers and schedulers it builds."""
from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from distill.errors import UserError
from search.strategies import (
    SAMPLERS, SCHEDULERS, Strategy, default_grace, grid_size, grid_values, parse_grid_values, spaced, typed,
)


def space(trial) -> dict:
    trial.suggest_float("lam", 0.01, 1.0, log=True)
    trial.suggest_int("depth", 1, 3)
    trial.suggest_categorical("critic", ["concat", "separable"])
    return {"constant": 1}


def test_spaced_values_are_geometric_on_a_log_scale_even_otherwise_and_every_choice():
    assert spaced(FloatDistribution(0.01, 1.0, log=True), 3) == (0.01, 0.1, 1.0)
    assert spaced(FloatDistribution(0.0, 1.0), 5) == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert spaced(FloatDistribution(1.0, 10.0), 2) == (1.0, 10.0)
    assert spaced(IntDistribution(1, 9), 3) == (1, 5, 9)
    assert spaced(IntDistribution(1, 100, log=True), 3) == (1, 10, 100)
    assert spaced(IntDistribution(1, 2), 5) == (1, 2), "integers once each"
    assert spaced(CategoricalDistribution(["a", "b", "c"]), 2) == ("a", "b", "c")
    assert spaced(FloatDistribution(0.0, 1.0), 4) == (0.0, 0.333333, 0.666667, 1.0), "six significant digits"


def test_grid_values_are_parsed_per_parameter_and_refused_when_malformed():
    assert parse_grid_values(["mcmi.lam = 0, 0.05 ,0.1", "kd.temperature=4"]) == {
        "mcmi.lam": ("0", "0.05", "0.1"), "kd.temperature": ("4",)}
    assert parse_grid_values(["layers=a=b,c"]) == {"layers": ("a=b", "c")}, "the first '=' splits name from values"
    assert parse_grid_values([]) == {}
    for item in ("lam", "=1,2", " =1", "lam=", "lam=, ,"):
        with pytest.raises(UserError) as refused:
            parse_grid_values([item])
        assert str(refused.value) == f"--grid-values {item!r}: give PARAM=V1,V2,... (e.g. mcmi.lam=0,0.05,0.1)"
    with pytest.raises(UserError) as refused:
        parse_grid_values(["lam=1", " lam =2"])
    assert str(refused.value) == "--grid-values names lam twice"


def test_grid_values_take_each_parameters_own_type():
    choices = CategoricalDistribution([1, "-2", None])
    assert typed("layers", choices, ("-2", "1", "None")) == ("-2", 1, None)
    with pytest.raises(UserError) as refused:
        typed("layers", choices, ("1", "x", "y"))
    assert str(refused.value) == "--grid-values layers: x is not one of its choices (1, -2, None)"
    assert typed("depth", IntDistribution(1, 3), ("1", "3")) == (1, 3)
    assert all(type(v) is int for v in typed("depth", IntDistribution(1, 3), ("2",)))
    assert typed("lam", FloatDistribution(0.0, 1.0), ("0", "0.5")) == (0.0, 0.5)
    with pytest.raises(UserError) as refused:
        typed("depth", IntDistribution(1, 3), ("1", "2.5"))
    assert str(refused.value) == "--grid-values depth: values must be ints, got 1, 2.5"
    with pytest.raises(UserError, match=r"^--grid-values lam: values must be floats, got high$"):
        typed("lam", FloatDistribution(0.0, 1.0), ("high",))


def test_a_grid_covers_every_parameter_of_the_space_from_given_values_or_points():
    values = grid_values(space, 2, {"critic": ("separable",)})
    assert values == {"lam": (0.01, 1.0), "depth": (1, 3), "critic": ("separable",)}
    assert grid_size(values) == 4 and grid_size({}) == 1
    with pytest.raises(UserError) as refused:
        grid_values(space, None, {"lam": ("0.1",)})
    assert str(refused.value) == "--grid-values gives no values for depth: give them, or --grid N for N points per " \
                                 "parameter"
    with pytest.raises(UserError) as refused:
        grid_values(space, 2, {"lam": ("0.1", "x")})
    assert str(refused.value) == "--grid-values lam: values must be floats, got 0.1, x"
    with pytest.raises(UserError) as refused:
        grid_values(space, 2, {"beta": ("1",), "alpha": ("2",)})
    assert str(refused.value) == ("--grid-values alpha: the space has no parameter of that name; it samples "
                                  "critic, depth, lam")


@pytest.mark.parametrize("strategy, max_t, message", [
    (Strategy(grace_period=0), 10, "--grace-period must be positive, got 0"),
    (Strategy(reduction_factor=1.0), 10, "--reduction-factor must be above 1, got 1"),
    (Strategy(grace_period=11), 10, "--grace-period 11 exceeds --max-t 10"),
    (Strategy(grace_period=3, window=4), 10, "--asha-window must be between 1 and --grace-period 3, got 4"),
    (Strategy(grace_period=3, window=0), 10, "--asha-window must be between 1 and --grace-period 3, got 0"),
    (Strategy(sampler="gp"), 10, "--sampler gp with --scheduler asha: Optuna's GP sampler models finished trials "
                                 "only and ignores every trial the scheduler stops, so it would learn from the few "
                                 "that ran to the end; use --scheduler none with it"),
    (Strategy(sampler="grid"), 10, "--sampler grid needs its values: --grid N (N per parameter) or --grid-values"),
    (Strategy(sampler="anneal"), 10, "unknown sampler 'anneal'; choose one of: tpe, tpe-sobol, random, gp, grid"),
    (Strategy(scheduler="hyperband"), 10, "unknown scheduler 'hyperband'; choose one of: asha, none"),
    (Strategy(pick="median"), 10, "unknown pick rule 'median'; choose one of: last, model"),
])
def test_a_strategy_no_search_could_run_is_refused_in_one_line(strategy, max_t, message):
    with pytest.raises(UserError) as refused:
        strategy.check(max_t)
    assert str(refused.value) == message


def test_the_boundaries_a_strategy_may_take():
    assert Strategy(grace_period=10, reduction_factor=1.01, window=10).check(10).grace_period == 10
    assert Strategy(grace_period=1).check(10).window == 1
    assert Strategy(sampler="gp", scheduler="none").check(10).sampler == "gp"
    assert Strategy(sampler="grid", grid={"lam": (1.0,)}).check(10).grid == {"lam": (1.0,)}
    assert Strategy().check(9).grace_period == 5 == default_grace(9), "the default rung filled in: half of max_t"
    assert Strategy(scheduler="none", grace_period=0).check(10).scheduler == "none", "no rung without ASHA"
    assert [default_grace(t) for t in (1, 2, 3, 20)] == [1, 1, 2, 10]


def test_a_strategy_labels_itself_with_what_differs_from_the_defaults():
    assert Strategy(grace_period=3, reduction_factor=2.0).label() == "tpe + asha (grace 3, rf 2)"
    assert Strategy(grace_period=3, window=2).label() == "tpe + asha (grace 3, rf 3, mean of 2)"
    assert Strategy("random", "none", pick="model").label() == "random + none, pick by model"


def test_the_samplers_are_optunas_seeded_and_the_grid_visits_every_point_once():
    tpe = SAMPLERS.get("tpe")(Strategy(), 7)
    assert isinstance(tpe, optuna.samplers.TPESampler)
    assert (tpe._constant_liar, tpe._multivariate, tpe._group) == (True, True, True)
    assert isinstance(SAMPLERS.get("random")(Strategy(), 7), optuna.samplers.RandomSampler)
    assert isinstance(SAMPLERS.get("gp")(Strategy(), 7), optuna.samplers.GPSampler)
    grid = {"lam": (0.1, 0.2, 0.3), "depth": (1, 2)}
    sampler = SAMPLERS.get("grid")(Strategy(sampler="grid", grid=grid), 7)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_categorical("lam", grid["lam"]) + t.suggest_categorical("depth", grid["depth"]),
                   n_trials=6)
    assert sorted((t.params["lam"], t.params["depth"]) for t in study.trials) == [
        (lam, depth) for lam in grid["lam"] for depth in grid["depth"]]
    draws = [SAMPLERS.get("random")(Strategy(), seed) for seed in (7, 7, 8)]
    values = [optuna.create_study(sampler=s).ask().suggest_float("x", 0, 1) for s in draws]
    assert values[0] == values[1] != values[2], "seeded"


def test_the_schedulers_are_rays_asha_on_student_epochs_and_fifo():
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from search.smoothed_asha import SmoothedASHA

    asha = SCHEDULERS.get("asha")(Strategy(grace_period=2, reduction_factor=4.0), 32)
    assert type(asha) is ASHAScheduler and not isinstance(asha, SmoothedASHA)
    assert (asha._time_attr, asha._metric, asha._mode, asha._max_t) == ("student_epoch", "student_val_acc", "max", 32)
    assert asha._reduction_factor == 4.0 and [milestone for milestone, _ in asha._brackets[0]._rungs] == [32, 8, 2]
    smoothed = SCHEDULERS.get("asha")(Strategy(grace_period=2, reduction_factor=4.0, window=2), 32)
    assert isinstance(smoothed, SmoothedASHA) and smoothed.window == 2 and smoothed._max_t == 32
    assert [milestone for milestone, _ in smoothed._brackets[0]._rungs] == [32, 8, 2], "grace 2, rf 4"
    assert type(SCHEDULERS.get("none")(Strategy(), 32)) is FIFOScheduler
    assert math.isclose(Strategy().reduction_factor, 3.0)


def test_smoothed_asha_averages_each_trials_own_last_epochs_once_each():
    from search.smoothed_asha import SmoothedASHA

    asha = SmoothedASHA(window=2, time_attr="student_epoch", metric="student_val_acc", mode="max", max_t=10,
                        grace_period=2)
    seen = lambda trial, epoch, value: asha.smoothed(trial, {"student_epoch": epoch, "student_val_acc": value})  # noqa: E731
    assert seen("a", 0, 0.9)["student_val_acc"] == 0.9, "epoch 0 (a teacher stage) is passed on, not remembered"
    assert seen("a", 1, 0.2)["student_val_acc"] == 0.2
    assert seen("b", 1, 0.8)["student_val_acc"] == 0.8, "another trial's epochs are its own"
    assert seen("a", 2, 0.4)["student_val_acc"] == pytest.approx(0.3)
    assert seen("a", 2, 0.4)["student_val_acc"] == pytest.approx(0.3), "a result seen twice counts once"
    assert seen("a", 3, 1.0)["student_val_acc"] == pytest.approx(0.7), "the window slides"
    waiting = {"student_epoch": 0, "student_val_acc": math.nan}
    assert asha.smoothed("a", waiting) is waiting and asha.smoothed("a", {"student_epoch": 4}) == {"student_epoch": 4}
    assert asha.history == {"a": {1: 0.2, 2: 0.4, 3: 1.0}, "b": {1: 0.8}}
    from types import SimpleNamespace

    finished = SimpleNamespace(trial_id="b")
    asha.on_trial_add(None, finished)
    asha.on_trial_complete(None, finished, {"student_epoch": 2, "student_val_acc": 0.6})
    assert "b" not in asha.history, "a finished trial's epochs are forgotten"


def test_smoothed_asha_judges_and_records_each_trial_on_its_own_window_through_rays_calls():
    """Through Ray's own calls, interleaved: A's rung value at epoch 2 is the mean of A's epochs (0.9), not of the
    latest epochs of whichever trial reported (0.5), so B at 0.55 is stopped. A trial finishing at max_t is recorded
    at its own window's mean; one that ends with no student epoch (its teacher diverged) is let go quietly."""
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from search.smoothed_asha import SmoothedASHA

    asha = SmoothedASHA(window=2, time_attr="student_epoch", metric="student_val_acc", mode="max", max_t=4,
                        grace_period=2, reduction_factor=2)
    a, b, c, d = (SimpleNamespace(trial_id=name) for name in "abcd")
    for trial in (a, b, c, d):
        asha.on_trial_add(None, trial)
    report = lambda trial, epoch, value: asha.on_trial_result(  # noqa: E731
        None, trial, {"student_epoch": epoch, "student_val_acc": value})
    report(a, 1, 0.9)
    report(b, 1, 0.1)
    assert report(a, 2, 0.9) == TrialScheduler.CONTINUE
    assert report(b, 2, 1.0) == TrialScheduler.STOP
    report(c, 1, 0.9)
    report(c, 2, 0.9)
    report(c, 3, 0.2)
    asha.on_trial_complete(None, c, {"student_epoch": 4, "student_val_acc": 0.8})
    rung_at_max_t = asha._brackets[0]._rungs[0]
    assert rung_at_max_t[0] == 4 and rung_at_max_t[1]["c"] == pytest.approx(0.5)
    asha.on_trial_result(None, d, {"student_epoch": 0, "student_val_acc": math.nan})
    asha.on_trial_complete(None, d, {"student_epoch": 0, "student_val_acc": math.nan})
    assert "d" not in asha.history and "c" not in asha.history


def test_a_sobol_start_covers_the_range_where_tpes_random_start_may_not():
    """Six trials over λ log-uniform in 0.05–1 (the README's search): the Sobol start puts its first four in the four
    quarters of the log range, one each, for every seed, also after an enqueued first point (which takes no Sobol
    point); TPE's random start with seed 0 (a property of that seed's draws) leaves two quarters empty."""
    from search.strategies import STARTUP_TRIALS

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def quarters(name: str, seed: int, trials: int = 6, enqueued: bool = False) -> set[int]:
        study = optuna.create_study(sampler=SAMPLERS.get(name)(Strategy(), seed), direction="maximize")
        if enqueued:
            study.enqueue_trial({"lam": 0.25})
            trial = study.ask()
            study.tell(trial, -abs(math.log(trial.suggest_float("lam", 0.05, 1.0, log=True) / 0.3)))
        found = set()
        for _ in range(trials):
            trial = study.ask()
            lam = trial.suggest_float("lam", 0.05, 1.0, log=True)
            study.tell(trial, -abs(math.log(lam / 0.3)))
            found.add(int(4 * math.log(lam / 0.05) / math.log(20)))
        return found

    assert all(quarters("tpe-sobol", seed) == {0, 1, 2, 3} for seed in range(10))
    assert all(quarters("tpe-sobol", seed, trials=4, enqueued=True) == {0, 1, 2, 3} for seed in range(10))
    assert len(quarters("tpe", 0)) == 2
    assert STARTUP_TRIALS == optuna.samplers.TPESampler()._n_startup_trials


def test_a_point_of_the_unit_interval_maps_onto_each_kind_of_range():
    from search.strategies import from_unit

    assert from_unit(0.5, FloatDistribution(0.01, 1.0, log=True)) == pytest.approx(0.1)
    assert from_unit(0.25, FloatDistribution(0.0, 8.0)) == pytest.approx(2.0)
    assert from_unit(0.99, FloatDistribution(0.0, 1.0, step=0.5)) == 1.0
    assert from_unit(0.6, IntDistribution(1, 5)) == 3
    assert from_unit(0.5, CategoricalDistribution(["a", "b", "c"])) == "b"
    assert from_unit(0.9999, CategoricalDistribution(["a", "b"])) == "b"
