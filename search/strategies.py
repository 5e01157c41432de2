"""How a search chooses configurations (the sampler) and stops trials early (the scheduler).

One typed set of options and one factory entry per sampler and per scheduler, shared by every search
and by `search.replay`: a strategy the replay measures is a strategy a search can run, with the same
objects. A new sampler or scheduler is one registered function here.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import optuna

from distill.errors import UserError
from distill.registry import Registry
from search.picks import PICKS
from search.options import METRIC, MODE, TIME_ATTR
from spaces.variants import GivenTrial


GRACE_FRACTION = 0.5  # ASHA's default first rung as a fraction of max_t (see `default_grace`)


@dataclass(frozen=True)
class Strategy:
    """A search's sampler and scheduler with their options; every default of the search strategy lives here."""

    sampler: str = "tpe"
    scheduler: str = "asha"
    grace_period: int | None = None  # student epochs before ASHA may stop a trial; None: `default_grace`
    reduction_factor: float = 3.0  # ASHA keeps the top 1/rf at each rung
    window: int = 1  # ASHA compares the mean of a trial's last `window` validation epochs (1: the epoch itself)
    grid: dict[str, tuple] = field(default_factory=dict)  # the grid sampler's values per parameter
    pick: str = "last"  # how the finished trials are ranked into the search's answer (`search.picks`)

    def label(self) -> str:
        """'tpe + asha (grace 3, rf 2)': how a report names the strategy."""
        window = f", mean of {self.window}" if self.window > 1 else ""
        stopping = (f"asha (grace {self.grace_period}, rf {self.reduction_factor:g}{window})"
                    if self.scheduler == "asha" else self.scheduler)
        pick = f", pick by {self.pick}" if self.pick != Strategy.pick else ""
        return f"{self.sampler} + {stopping}{pick}"

    def for_budget(self, max_t: int) -> Strategy:
        """Self with ASHA's first rung filled in where none was given (`default_grace`)."""
        return self if self.grace_period is not None else replace(self, grace_period=default_grace(max_t))

    def check(self, max_t: int) -> Strategy:
        """Self `for_budget(max_t)`, or a UserError for a combination no search could run."""
        if self.grace_period is None:
            return self.for_budget(max_t).check(max_t)
        SAMPLERS.get(self.sampler)
        SCHEDULERS.get(self.scheduler)
        PICKS.get(self.pick)
        if self.scheduler == "asha":
            if self.grace_period <= 0:
                raise UserError(f"--grace-period must be positive, got {self.grace_period}")
            if self.reduction_factor <= 1:
                raise UserError(f"--reduction-factor must be above 1, got {self.reduction_factor:g}")
            if self.grace_period > max_t:
                raise UserError(f"--grace-period {self.grace_period} exceeds --max-t {max_t}")
            if not 1 <= self.window <= self.grace_period:
                raise UserError(f"--asha-window must be between 1 and --grace-period {self.grace_period}, got "
                                f"{self.window}")
        if self.sampler == "gp" and self.scheduler != "none":
            raise UserError(f"--sampler gp with --scheduler {self.scheduler}: Optuna's GP sampler models finished "
                            "trials only and ignores every trial the scheduler stops, so it would learn from the "
                            "few that ran to the end; use --scheduler none with it")
        if self.sampler == "grid" and not self.grid:
            raise UserError("--sampler grid needs its values: --grid N (N per parameter) or --grid-values")
        return self


SAMPLERS: Registry[Callable[[Strategy, int], optuna.samplers.BaseSampler]] = Registry("sampler")
SCHEDULERS: Registry[Callable[[Strategy, int], object]] = Registry("scheduler")


@SAMPLERS.register("tpe")
def tpe_sampler(strategy: Strategy, seed: int) -> optuna.samplers.BaseSampler:
    """Optuna's TPE, multivariate, with a constant liar so concurrent trials spread out."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True, group=True)


STARTUP_TRIALS = 10  # TPE's own startup: the trials it draws before it models anything (Optuna's default)


class SobolStart(optuna.samplers.BaseSampler):
    """TPE whose startup trials are a scrambled Sobol sequence instead of independent random draws, so that a small
    search's first trials cover every range evenly (TPE's first ten draws are plain random: the README's six-trial
    search sampled λ only between 0.18 and 0.43 of 0.05–1). Written here because Optuna's QMCSampler samples the
    first trial at random and takes its space from the first finished trial, which an asynchronous search lacks."""

    def __init__(self, seed: int, startup: int = STARTUP_TRIALS) -> None:
        from scipy.stats import qmc

        self._points = qmc.Sobol(d=16, scramble=True, seed=seed).random_base2(6)  # 64 points, 16 dimensions at most
        self._dimensions: dict[str, int] = {}
        self._order: dict[int, int] = {}  # trial number -> its place among the sampled (not enqueued) trials
        self._startup = startup
        self._tpe = tpe_sampler(Strategy(), seed)

    def _starting(self, trial: optuna.trial.FrozenTrial) -> bool:
        return self._order.get(trial.number, self._startup) < self._startup

    def infer_relative_search_space(self, study, trial):
        return {} if self._starting(trial) else self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return {} if self._starting(trial) else self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, name, distribution):
        if not self._starting(trial) or len(self._dimensions) >= self._points.shape[1] and name not in self._dimensions:
            return self._tpe.sample_independent(study, trial, name, distribution)
        dimension = self._dimensions.setdefault(name, len(self._dimensions))
        return from_unit(self._points[self._order[trial.number] % len(self._points), dimension], distribution)

    def before_trial(self, study, trial) -> None:
        if "fixed_params" not in trial.system_attrs:  # an enqueued first point takes no Sobol point
            self._order.setdefault(trial.number, len(self._order))
        self._tpe.before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()


def from_unit(u: float, distribution: optuna.distributions.BaseDistribution):
    """A point of [0, 1) as a value of `distribution`: evenly on its (log) scale, or a choice by its share."""
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return distribution.choices[min(int(u * len(distribution.choices)), len(distribution.choices) - 1)]
    low, high = float(distribution.low), float(distribution.high)
    value = math.exp(math.log(low) + u * (math.log(high) - math.log(low))) if distribution.log else low + u * (high - low)
    step = getattr(distribution, "step", None)
    if step:
        value = low + round((value - low) / step) * step
    value = min(max(value, low), high)
    return int(round(value)) if isinstance(distribution, optuna.distributions.IntDistribution) else value


@SAMPLERS.register("tpe-sobol")
def sobol_tpe_sampler(strategy: Strategy, seed: int) -> optuna.samplers.BaseSampler:
    """TPE after a scrambled Sobol start (`SobolStart`): even coverage of the ranges while TPE has nothing to model."""
    return SobolStart(seed)


@SAMPLERS.register("random")
def random_sampler(strategy: Strategy, seed: int) -> optuna.samplers.BaseSampler:
    """Uniform (log-uniform where the space says so) and independent draws."""
    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("gp")
def gp_sampler(strategy: Strategy, seed: int) -> optuna.samplers.BaseSampler:
    """Optuna's Gaussian-process sampler (a noise term in its kernel); finished trials only."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna.samplers.GPSampler(seed=seed)


@SAMPLERS.register("grid")
def grid_sampler(strategy: Strategy, seed: int) -> optuna.samplers.BaseSampler:
    """Every combination of `strategy.grid`'s values once, in an order drawn from `seed`."""
    return optuna.samplers.GridSampler({k: list(v) for k, v in strategy.grid.items()}, seed=seed)


@SCHEDULERS.register("asha")
def asha_scheduler(strategy: Strategy, max_t: int):
    """Ray's ASHA on the student's validation accuracy at student epochs (a teacher stage reaches no rung), on the
    mean of the last `strategy.window` epochs when that is above 1."""
    from ray.tune.schedulers import ASHAScheduler

    options = dict(time_attr=TIME_ATTR, metric=METRIC, mode=MODE, max_t=max_t, grace_period=strategy.grace_period,
                   reduction_factor=strategy.reduction_factor)
    if strategy.window == 1:
        return ASHAScheduler(**options)
    from search.smoothed_asha import SmoothedASHA

    return SmoothedASHA(window=strategy.window, **options)


@SCHEDULERS.register("none")
def no_stopping(strategy: Strategy, max_t: int):
    """Every trial runs to `max_t` (Ray's first-in-first-out scheduler)."""
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


def default_grace(max_t: int) -> int:
    """ASHA's default first rung: half of `max_t`, the rule with the best measured results on the recorded grids
    (BENCHMARKS.md); earlier rungs ranked KD's settings backwards there."""
    return max(1, math.ceil(GRACE_FRACTION * max_t))


def grid_space(trial, values: dict[str, tuple], space: Callable) -> dict | None:
    """A grid as a space: each parameter a choice among its grid values, so a value the search's own range excludes
    (λ = 0 below a log range, the equal-budget control) is a grid point like any other; the constants `space`
    derives from the chosen values (KD's CE weight) are returned as the search's own space returns them."""
    chosen = {name: trial.suggest_categorical(name, choices) for name, choices in values.items()}
    return space(GivenTrial(chosen))


def space_for(strategy: Strategy, space: Callable) -> Callable:
    """The space a search samples under `strategy`: its grid as choices for the grid sampler, else `space` itself."""
    return partial(grid_space, values=strategy.grid, space=space) if strategy.sampler == "grid" else space


def sampled_space(space: Callable) -> Callable:
    """The method's own space beneath a grid's choices (`space_for`): what any other strategy would sample."""
    return space.keywords["space"] if isinstance(space, partial) and space.func is grid_space else space


def distributions(space: Callable) -> dict[str, optuna.distributions.BaseDistribution]:
    """What one draw of a define-by-run space suggests, with each parameter's distribution (a throwaway study)."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line
    try:
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
        space(trial)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return dict(trial.distributions)


def ranges(space: Callable) -> dict[str, dict]:
    """Each parameter's range as a table's metadata records it: low, high and log scale, or the choices."""
    found = {}
    for name, distribution in distributions(space).items():
        if isinstance(distribution, optuna.distributions.CategoricalDistribution):
            found[name] = {"choices": list(distribution.choices)}
        else:
            found[name] = {"low": distribution.low, "high": distribution.high, "log": distribution.log}
    return found


def parse_grid_values(items: list[str]) -> dict[str, tuple[str, ...]]:
    """['mcmi.lam=0,0.05,0.1'] -> {'mcmi.lam': ('0', '0.05', '0.1')}; typed later, against the parameter's
    distribution."""
    given = {}
    for item in items:
        name, sep, values = item.partition("=")
        parts = tuple(v.strip() for v in values.split(",") if v.strip())
        if not sep or not name.strip() or not parts:
            raise UserError(f"--grid-values {item!r}: give PARAM=V1,V2,... (e.g. mcmi.lam=0,0.05,0.1)")
        if name.strip() in given:
            raise UserError(f"--grid-values names {name.strip()} twice")
        given[name.strip()] = parts
    return given


def typed(name: str, distribution: optuna.distributions.BaseDistribution, raw: tuple[str, ...]) -> tuple:
    """Grid values as the parameter takes them: a categorical's own choices, ints, or floats."""
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        choices = {str(choice): choice for choice in distribution.choices}
        wrong = [v for v in raw if v not in choices]
        if wrong:
            raise UserError(f"--grid-values {name}: {wrong[0]} is not one of its choices "
                            f"({', '.join(choices)})")
        return tuple(choices[v] for v in raw)
    kind = int if isinstance(distribution, optuna.distributions.IntDistribution) else float
    try:
        values = tuple(kind(v) for v in raw)
    except ValueError:
        raise UserError(f"--grid-values {name}: values must be {kind.__name__}s, got {', '.join(raw)}") from None
    infinite = [v for v in values if not math.isfinite(v)]
    if infinite:
        raise UserError(f"--grid-values {name}: {infinite[0]} is not a finite number")
    return values


def grid_values(space: Callable, points: int | None, given: dict[str, tuple[str, ...]]) -> dict[str, tuple]:
    """The grid: `points` values per parameter (log-spaced on a log scale, every choice of a categorical), or the
    values `given` for a parameter; a parameter of the space that neither covers is a UserError."""
    found = distributions(space)
    unknown = sorted(set(given) - set(found))
    if unknown:
        raise UserError(f"--grid-values {unknown[0]}: the space has no parameter of that name; it samples "
                        f"{', '.join(sorted(found))}")
    values = {}
    for name, distribution in found.items():
        if name in given:
            values[name] = typed(name, distribution, given[name])
        elif points is None:
            raise UserError(f"--grid-values gives no values for {name}: give them, or --grid N for N points per "
                            "parameter")
        else:
            values[name] = spaced(distribution, points)
    return values


def spaced(distribution: optuna.distributions.BaseDistribution, points: int) -> tuple:
    """`points` values across a distribution: geometric on a log scale, even otherwise; every categorical choice."""
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return tuple(distribution.choices)
    low, high = distribution.low, distribution.high
    line = np.geomspace(low, high, points) if distribution.log else np.linspace(low, high, points)
    if isinstance(distribution, optuna.distributions.IntDistribution):
        return tuple(sorted({int(round(v)) for v in line}))
    return tuple(float(f"{v:.6g}") for v in line)


def grid_size(values: dict[str, tuple]) -> int:
    return math.prod(len(v) for v in values.values())
