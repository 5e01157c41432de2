"""Replay search strategies on recorded learning curves: what each one's answer is worth, against compute.

  python -m search.replay results/grid/trials.parquet --sampler tpe random --scheduler asha none \\
      --grace-period 3 --reduction-factor 2 --workers 2 --budget 320 --repeats 48 --seed 0 --json replay.json

Each strategy (every combination of the --sampler, --scheduler, --grace-period, --reduction-factor, --asha-window
and --pick values given) runs `--repeats` simulated searches (`search.simulate`: the real Ray scheduler and Optuna
searcher) on a compute budget: epochs trained, teacher stages included (`--budget`, default 16 full trials'
worth), so epochs that early stopping saves buy more trials; `--trials N` is a fixed trial count instead. As in a
live search, each simulated search runs every trial on one recorded seed, taking the table's seeds in turn, and its
pick is scored on the seeds it did not see: regret is the best configuration's mean final validation accuracy over
those seeds minus the pick's. Reported per budget point: the mean regret and P(the pick is within ε of the best),
each with a 95% interval from a bootstrap over the table's seeds around the repeats (the ground truth's own noise),
and the grid's stability: how often a resample of its seeds keeps its best the best.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import optuna
import pyarrow.compute as pc

from distill.cli import ArgumentParser, check_output_file, clock, run_cli, write_output
from distill.errors import UserError
from search import console, curves, ties
from search.options import METRIC, TIME_ATTR
from search.grid_truth import ALL_SEEDS, DRAWS, GridTruth, Resample, summary
from search.simulate import Budget, Event, Recorded, Report, replay
from search.picks import PICKS
from search.strategies import SAMPLERS, SCHEDULERS, Strategy, grid_size, space_for
from trainables.metrics import STUDENT

BUDGET_POINTS = 10  # the regret curve is reported at these many even fractions of the budget
BUDGET_TRIALS = 16  # the default budget: this many trials run to the end
DEFAULT = Strategy()
SEED_MODES = ("one", "per-trial")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m search.replay", description=__doc__)
    parser.add_argument("table", help="a Parquet table: a search's trials.parquet, a recorded grid's, or your own "
                        "with parameter columns, seed, student_epoch, student_val_acc and seconds")
    table = parser.add_argument_group("a table of your own (a search's table says these in its metadata)")
    table.add_argument("--params", nargs="+", metavar="NAME", help="the searched parameters")
    table.add_argument("--log", nargs="*", metavar="NAME", help="the parameters a search samples on a log scale "
                       "(--log alone: none)")
    table.add_argument("--max-t", type=int, help="the student epochs a trial runs to the end")
    table.add_argument("--epoch-seconds", type=float, help="seconds per epoch, for a table without a seconds column")
    strategy = parser.add_argument_group("strategies (every combination is replayed)")
    strategy.add_argument("--sampler", nargs="+", default=[DEFAULT.sampler], choices=SAMPLERS.names(),
                          help=f"samplers to compare (default: {DEFAULT.sampler})")
    strategy.add_argument("--scheduler", nargs="+", default=[DEFAULT.scheduler], choices=SCHEDULERS.names(),
                          help=f"schedulers to compare (default: {DEFAULT.scheduler})")
    strategy.add_argument("--grace-period", nargs="+", type=int,
                          help="ASHA grace periods to compare (default: a search's, half of the table's epochs)")
    strategy.add_argument("--reduction-factor", nargs="+", type=float, default=[DEFAULT.reduction_factor],
                          help=f"ASHA reduction factors to compare (default: {DEFAULT.reduction_factor:g})")
    strategy.add_argument("--asha-window", nargs="+", type=int, default=[DEFAULT.window],
                          help=f"ASHA windows to compare: the mean of the last K epochs (default: {DEFAULT.window})")
    strategy.add_argument("--pick", nargs="+", default=[DEFAULT.pick], choices=PICKS.names(),
                          help=f"pick rules to compare (default: {DEFAULT.pick})")
    size = parser.add_argument_group("compute")
    budget = size.add_mutually_exclusive_group()
    budget.add_argument("--budget", type=float, metavar="EPOCHS", help="epochs a simulated search may train, student "
                        f"and teacher (default: {BUDGET_TRIALS} trials run to the end)")
    budget.add_argument("--budget-seconds", type=float, metavar="S", help="the budget as trial-seconds instead")
    budget.add_argument("--trials", type=int, help="a fixed trial count instead of a budget (early stopping then buys "
                        "nothing)")
    size.add_argument("--workers", type=int, default=2, help="trials at once (default: 2)")
    run = parser.add_argument_group("repeats and scoring")
    run.add_argument("--repeats", type=int, default=48, help="simulated searches per strategy (default: 48)")
    run.add_argument("--seed", type=int, default=0, help="seeds every repeat's sampler (default: 0)")
    run.add_argument("--seeds", choices=SEED_MODES, default="one", help="one: every trial of a simulated search runs "
                     "one recorded seed, as live, and its pick is scored on the others; per-trial: a seed drawn per "
                     "trial, scored on all seeds, the ones the search saw included (the older replay) (default: one)")
    run.add_argument("--epsilon", type=float, default=0.5,
                     help="a pick within this many accuracy points of the best counts as found (default: 0.5)")
    run.add_argument("--first-points", choices=["table", "none"], default="table",
                     help="table: try the search's own first points (from the table's metadata) first, as the "
                     "search does; none: sample from the start (default: table)")
    run.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    run.add_argument("--plot", metavar="PATH", help="also draw the regret figure (PNG)")
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Size:
    """How long a simulated search runs: a compute budget, or a fixed trial count."""

    trials: int | None = None
    budget: Budget | None = None

    def total(self, recorded: Recorded) -> float:
        """The compute axis's end: the budget, or the fixed trials all run to the end."""
        return self.budget.amount if self.budget else self.trials * recorded.full_trial_cost("epochs")

    @property
    def unit(self) -> str:
        return self.budget.unit if self.budget else "epochs"

    def points(self, recorded: Recorded) -> np.ndarray:
        """The budget points the regret curve is reported at: even fractions of the compute axis."""
        return np.linspace(0, self.total(recorded), BUDGET_POINTS + 1)[1:]

    def label(self, recorded: Recorded) -> str:
        if self.budget is None:
            return f"a fixed {self.trials} trials (not a budget: epochs early stopping saves buy nothing)"
        full = recorded.full_trial_cost(self.unit)
        return (f"a budget of {self.budget.amount:g} {'trial-seconds' if self.unit == 'seconds' else 'epochs'} "
                f"(student and teacher), {self.budget.amount / full:.1f} trials run to the end")


def size_of(args: argparse.Namespace, recorded: Recorded) -> Size:
    if args.trials is not None:
        return Size(trials=args.trials)
    if args.budget_seconds is not None:
        return Size(budget=Budget(args.budget_seconds, "seconds"))
    return Size(budget=Budget(args.budget if args.budget is not None
                              else BUDGET_TRIALS * recorded.full_trial_cost("epochs")))


def strategies_of(args: argparse.Namespace, grid: dict[str, tuple], max_t: int) -> list[Strategy]:
    """Every combination of the options given, each checked as a search checks it; ASHA's options only matter to
    ASHA, so `none` appears once."""
    found: dict[str, Strategy] = {}
    refused: list[UserError] = []
    combinations = list(itertools.product(args.sampler, args.scheduler, args.grace_period or [None],
                                          args.reduction_factor, args.asha_window, args.pick))
    for sampler, scheduler, grace_period, factor, window, pick in combinations:
        strategy = Strategy(sampler, scheduler, grace_period, factor, window, grid if sampler == "grid" else {}, pick)
        if scheduler != "asha":
            strategy = replace(strategy, grace_period=None, reduction_factor=DEFAULT.reduction_factor,
                               window=DEFAULT.window)
        try:
            checked = strategy.check(max_t)
        except UserError as err:
            refused.append(err)
            continue
        found.setdefault(checked.label(), checked)
    if refused and (len(combinations) == 1 or not found):
        raise refused[0]
    for err in dict.fromkeys(str(e) for e in refused):  # a combination no search could run is left out, and said
        print(f"note: left out a combination: {err}")
    return list(found.values())


def load(path: Path, params: list[str] | None, log: list[str] | None = None, max_t: int | None = None,
         epoch_seconds: float | None = None) -> tuple[Recorded, dict]:
    """The recorded configurations of a table (its search-stage rows, when it has stages) and its metadata. What the
    metadata does not say (parameters, log scales, max_t) must be given; a table without seconds needs
    `epoch_seconds`."""
    table, metadata = curves.read(path)
    names = set(table.column_names)
    curves.require_curve_columns(table, path)
    params = curves.table_params(table, metadata, path, params)
    curves.check_rows(table, path, params)
    if log is None and "log_params" not in metadata:
        raise UserError(f"{path} does not say which parameters a search samples on a log scale: name them with --log "
                        "(--log alone: none), or λ-like ranges are sampled on the wrong scale")
    log_params = frozenset(metadata.get("log_params") or () if log is None else log)
    if unknown := sorted(log_params - set(params)):
        raise UserError(f"--log {unknown[0]}: not one of the parameters ({', '.join(params)})")
    max_t = curves.table_max_t(metadata, path, max_t)
    if epoch_seconds is None and curves.SECONDS not in names:
        raise UserError(f"{path} has no {curves.SECONDS} column: give --epoch-seconds (the seconds an epoch takes), "
                        "or every strategy is timed as if an epoch took one second")
    if epoch_seconds is not None and not (math.isfinite(epoch_seconds) and epoch_seconds > 0):
        raise UserError(f"--epoch-seconds must be a positive number, got {epoch_seconds:g}")
    if "stage" in names:
        table = table.filter(pc.equal(table.column("stage"), curves.SEARCH_STAGE))
    rows = table.to_pylist()
    if epoch_seconds is not None:
        rows = [{**row, curves.SECONDS: epoch_seconds} for row in rows]
    elif any(row[curves.SECONDS] is None for row in rows):
        raise UserError(f"{path}: some rows have no {curves.SECONDS}: give --epoch-seconds")
    runs: dict[tuple, dict[int, list[dict]]] = {}
    for row in rows:
        key = tuple((p, row[p]) for p in params)
        runs.setdefault(key, {}).setdefault(int(row["seed"]), []).append(row)
    configs, curves_of, truth = [], [], []
    for key, seeds in runs.items():
        complete = {seed: reports_of(rows_) for seed, rows_ in seeds.items()}
        finals = [r[-1].value for r in complete.values() if r[-1].diverged or r[-1].student_epoch >= max_t]
        if finals:
            configs.append(dict(key))
            curves_of.append({s: r for s, r in complete.items() if r[-1].diverged or r[-1].student_epoch >= max_t})
            truth.append(float(np.mean(finals)))
    if len(configs) < 2:
        raise UserError(f"{path} holds {len(configs)} configuration(s) with a curve that reaches epoch {max_t}: a "
                        "replay needs a recorded grid (e.g. --sampler grid --grid-seeds 4 --scheduler none)")
    metadata = {**metadata, "ranges": checked_ranges(metadata.get("ranges"), path, params)}
    recorded = Recorded(tuple(params), configs, curves_of, np.array(truth), log_params, max_t)
    scale = {}
    for name in params:
        values = [c[name] for c in configs]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            low, high = (min(recorded.transform(name, float(v)) for v in values),
                         max(recorded.transform(name, float(v)) for v in values))
            scale[name] = (low, (high - low) or 1.0)
    return replace(recorded, scale=scale), metadata


def checked_ranges(ranges: object, path: Path, params: list[str]) -> dict:
    """The metadata's sampling ranges of `params`, each {"choices": [...]} or finite {"low", "high", "log"} with
    low ≤ high (low > 0 on a log scale); anything else is one UserError naming the parameter."""
    if ranges is None:
        return {}
    if not isinstance(ranges, dict):
        raise UserError(f"{path}: the metadata's ranges are damaged (not a mapping of parameter to range)")
    found = {}
    for name in (n for n in params if n in ranges):
        given = ranges[name]
        if isinstance(given, dict) and isinstance(given.get("choices"), list) and given["choices"]:
            found[name] = given
            continue
        low, high = (given.get(k) if isinstance(given, dict) else None for k in ("low", "high"))
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high))
        log = given.get("log", False) if isinstance(given, dict) else None
        if not (numbers and isinstance(log, bool) and low <= high and (low > 0 or not log)):
            raise UserError(f"{path}: the metadata's range of {name} is damaged: {json.dumps(given, default=str)}")
        found[name] = {"low": float(low), "high": float(high), "log": log}
    return found


def grid_of(recorded: Recorded) -> dict[str, tuple]:
    """Each parameter's recorded values: the grid a grid strategy replays."""
    return {name: tuple(sorted({c[name] for c in recorded.configs}, key=str)) for name in recorded.params}


def first_points(recorded: Recorded, metadata: dict) -> list[dict]:
    """The search's own first points from the table's metadata, those over the table's parameters."""
    return [p for p in metadata.get("points", []) if set(p) <= set(recorded.params)]


def reports_of(rows: list[dict]) -> list[Report]:
    """One run's reports in the order it made them: teacher epochs, then student epochs, then a divergence."""
    order = {"teacher": 0, STUDENT: 1, curves.DIVERGED_PHASE: 2}
    rows = sorted(rows, key=lambda r: (order.get(r.get("phase") or STUDENT, 1), r.get("epoch") or r[TIME_ATTR]))
    found = []
    for row in rows:
        phase = row.get("phase") or STUDENT
        value = row[METRIC]
        found.append(Report(int(row[TIME_ATTR] or 0) if phase != "teacher" else 0,
                            math.nan if value is None else float(value), float(row[curves.SECONDS]),
                            phase == curves.DIVERGED_PHASE))
    return found


def table_space(trial, distributions: dict) -> None:
    """The searched parameters as the table spans them (log where the search sampled on a log scale)."""
    for name, (kind, spec) in distributions.items():
        if kind == "categorical":
            trial.suggest_categorical(name, spec)
        else:
            trial.suggest_float(name, *spec[:2], log=spec[2])


def space_of(recorded: Recorded, ranges: dict | None = None) -> partial:
    """The space a simulated search samples: the search's own ranges where the table's metadata has them (what a
    live search sampled; the nearest recorded configuration answers), else the span of the recorded values."""
    distributions = {}
    for name in recorded.params:
        values = [c[name] for c in recorded.configs]
        given = (ranges or {}).get(name)
        if isinstance(given, dict) and "choices" in given:
            distributions[name] = ("categorical", tuple(given["choices"]))
        elif isinstance(given, dict) and name in recorded.scale:
            distributions[name] = ("float", (float(given["low"]), float(given["high"]), bool(given.get("log"))))
        elif name in recorded.scale:
            positive = [float(v) for v in values if float(v) > 0]
            log = name in recorded.log_params and bool(positive)
            low = min(positive) if log else min(float(v) for v in values)
            distributions[name] = ("float", (low, max(float(v) for v in values), log))
        else:
            distributions[name] = ("categorical", tuple(sorted(set(values), key=str)))
    return partial(table_space, distributions=distributions)


def tied_with_best(recorded: Recorded) -> np.ndarray:
    """Per configuration: whether the search's own tie rule (`search.ties`, over the table's seeds, paired where they
    are shared) cannot tell it from the best. The best is tied with itself."""
    final = {str(i): {seed: reports[-1].value for seed, reports in curves.items()}
             for i, curves in enumerate(recorded.curves)}
    kept = set(ties.mcb(final).kept) | {str(int(np.argmax(recorded.truth)))}
    return np.array([str(i) in kept for i in range(len(final))])


@dataclass(frozen=True)
class Runs:
    """One strategy's simulated searches: per repeat, the seed column it ran on (ALL_SEEDS: a seed per trial), its
    pick at each budget point (−1: none yet), the compute it spent, the trials it finished and its wall clock."""

    strategy: Strategy
    search_seeds: np.ndarray
    picks: np.ndarray
    spent: np.ndarray
    trials: np.ndarray
    seconds: np.ndarray


def picks_at(events: list[Event], budgets: np.ndarray, unit: str) -> np.ndarray:
    """The configuration the search would answer at each budget point (the pick after the last trial finished by
    then; the final pick once the search ended), −1 before any."""
    out = np.full(len(budgets), -1)
    for i, budget in enumerate(budgets):
        done = [e for e in events if e.spent(unit) <= budget + 1e-9 and e.pick is not None]
        if done:
            out[i] = done[-1].pick
    return out


def run_strategy(recorded: Recorded, truth: GridTruth, strategy: Strategy, space, points: list[dict], size: Size,
                 workers: int, repeats: int, seed: int, seeds: str = "one",
                 on_repeat: Callable[[int], None] | None = None) -> Runs:
    """`repeats` simulated searches of `strategy`; with one seed per search the repeats take the seeds every
    configuration has in turn. `on_repeat(n)` hears of each repeat done."""
    shared = recorded.seeds()
    if seeds == "one" and not shared:
        raise UserError("no seed was recorded for every configuration: a one-seed replay needs one (or --seeds "
                        "per-trial)")
    budgets = size.points(recorded)
    first = [] if strategy.sampler == "grid" else points  # a grid has no first points, as in a search
    trials = size.trials
    if strategy.sampler == "grid":  # a grid search runs its points once (Optuna's grid would start over)
        trials = min(trials or grid_size(strategy.grid), grid_size(strategy.grid))
    found = {"search_seeds": [], "picks": [], "spent": [], "trials": [], "seconds": []}
    for repeat in range(repeats):
        search_seed = shared[repeat % len(shared)] if seeds == "one" else None
        events = replay(recorded, strategy, space_for(strategy, space), first, trials, workers,
                        seed * 100_003 + repeat, search_seed, size.budget)
        found["search_seeds"].append(ALL_SEEDS if search_seed is None else truth.column(search_seed))
        found["picks"].append(picks_at(events, budgets, size.unit))
        found["spent"].append(events[-1].spent(size.unit) if events else 0)
        found["trials"].append(len(events))
        found["seconds"].append(events[-1].seconds if events else 0.0)
        if on_repeat is not None:
            on_repeat(repeat + 1)
    return Runs(strategy, **{k: np.array(v) for k, v in found.items()})


class RepeatProgress:
    """One strategy's progress line: repeats done of planned, elapsed, and what is left at the pace so far."""

    def __init__(self, title: str, repeats: int) -> None:
        self.title, self.repeats, self.started = title, repeats, time.monotonic()
        console.current().status(f"{title}: 0/{repeats} repeats")

    def __call__(self, done: int) -> None:
        elapsed = time.monotonic() - self.started
        console.current().status(f"{self.title}: {done}/{self.repeats} repeats · {clock(elapsed)}, "
                                 f"~{clock(elapsed / done * (self.repeats - done))} left")

    def done(self) -> None:
        console.current().end_status(f"{self.title}: done ({self.repeats} repeats in "
                                     f"{clock(time.monotonic() - self.started)})")


def regret_draws(runs: Runs, truth: GridTruth, resamples: list[Resample]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Regrets [repeat, budget point] on the grid as recorded, and on each resample of its seeds (its drawn repeats)."""
    return (truth.regrets(runs.picks, runs.search_seeds),
            [truth.regrets(runs.picks, runs.search_seeds, r.weights, r.repeats) for r in resamples])


def scored(runs: Runs, truth: GridTruth, resamples: list[Resample], epsilon: float) -> list[dict]:
    """Per budget point: mean regret and P(within ε) with 95% intervals that resample the grid's seeds."""
    point, draws = regret_draws(runs, truth, resamples)
    return [summary(point[:, i], [d[:, i] for d in draws], epsilon) for i in range(point.shape[1])]


def shown(value: float | None) -> str:
    return "no pick" if value is None else f"{value:.2f}"


def interval_text(low_high: list[float] | None, digits: int = 2) -> str:
    return "[—]" if low_high is None else f"[{low_high[0]:.{digits}f}, {low_high[1]:.{digits}f}]"


def quiet() -> None:
    """No line per simulated trial, none for a grid's end per repeat, no Optuna experimental warnings."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("ray.tune.search.optuna.optuna_search").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    quiet()
    for flag, value in (("--workers", args.workers), ("--trials", args.trials), ("--repeats", args.repeats),
                        ("--budget", args.budget), ("--budget-seconds", args.budget_seconds)):
        if value is not None and not value > 0:
            raise UserError(f"{flag} must be positive, got {value:g}")
    check_output_file(args.json, "--json")
    check_output_file(args.plot, "--plot")
    path = Path(args.table)
    recorded, metadata = load(path, args.params, args.log, args.max_t, args.epoch_seconds)
    truth = GridTruth.of(recorded.curves)
    if args.seeds == "one" and len(recorded.seeds()) < 2:
        raise UserError(f"{path} has {len(recorded.seeds())} seed(s) recorded for every configuration: scoring a "
                        "pick on seeds its search did not see needs 2 or more (or --seeds per-trial)")
    grid = grid_of(recorded)
    if "grid" in args.sampler and args.trials and args.trials > len(recorded.configs):
        raise UserError(f"--sampler grid: the table's grid has {len(recorded.configs)} configurations, fewer than "
                        f"--trials {args.trials}; give --trials {len(recorded.configs)} or fewer")
    size = size_of(args, recorded)
    strategies = strategies_of(args, grid, recorded.max_t)
    space = space_of(recorded, metadata.get("ranges"))
    points = first_points(recorded, metadata) if args.first_points == "table" else []
    best = int(np.argmax(recorded.truth))
    tied = tied_with_best(recorded)
    stability = truth.stability(seed=args.seed)
    print(f"{path}: {len(recorded.configs)} configurations, {len(truth.seeds)} seeds, max_t {recorded.max_t}; the "
          f"best {json.dumps(recorded.configs[best], default=str)} at {100 * recorded.truth[best]:.2f}% (mean over its "
          f"{len(recorded.curves[best])} seeds)")
    print(f"stability: a resample of the seeds keeps it the best {stability:.0%} of the time"
          + ("" if stability >= 0.9 else " (below 90%: this grid cannot tell strategies far apart)"))
    others = [json.dumps(recorded.configs[i], default=str) for i in np.flatnonzero(tied) if i != best]
    print(f"the seeds cannot tell from the best (the search's tie rule: multiple comparison with the best, "
          f"{1 - ties.ALPHA:.0%}): {', '.join(others) or 'none'}")
    scoring = ("one seed per simulated search (as live), the pick scored on the seeds it did not see"
               if args.seeds == "one" else "a seed drawn per trial, the pick scored on all seeds (the seen ones too)")
    print(f"each strategy: {args.repeats} simulated searches, {args.workers} trials at once, {size.label(recorded)}; "
          f"{scoring}; intervals resample the grid's seeds ({DRAWS} draws)")
    all_runs = []
    for number, strategy in enumerate(strategies, 1):
        progress = RepeatProgress(f"  strategy {number}/{len(strategies)}, {strategy.label()}", args.repeats)
        all_runs.append(run_strategy(recorded, truth, strategy, space, points, size, args.workers, args.repeats,
                                     args.seed, args.seeds, progress))
        progress.done()
    resamples = truth.resamples(all_runs[0].search_seeds, seed=args.seed)  # the same draws for every strategy
    budgets = size.points(recorded)
    results = [{"strategy": runs.strategy.label(),
                "options": {**asdict(runs.strategy), "workers": args.workers, "trials": args.trials,
                            "budget": size.budget and asdict(size.budget)},
                "budgets": budgets.tolist(), "points": scored(runs, truth, resamples, args.epsilon),
                "median_spent": float(np.median(runs.spent)), "median_trials": float(np.median(runs.trials)),
                "median_seconds": float(np.median(runs.seconds))} for runs in all_runs]
    print("\n" + text_table(results, size.total(recorded), size.unit, args.epsilon))
    if args.plot:
        print(f"\nfigure: {plot(results, Path(args.plot), args.epsilon, size.unit)}")
    if args.json:
        payload = {"table": str(path), "best": {"config": recorded.configs[best], "value": float(recorded.truth[best])},
                   "stability": stability, "seeds": list(truth.seeds), "scoring": args.seeds,
                   "size": size.label(recorded), "epsilon_points": args.epsilon, "repeats": args.repeats,
                   "seed": args.seed, "strategies": results}
        write_output(args.json, json.dumps(payload, indent=2, default=str))
        print(f"numbers: {args.json}")
    return 0


def text_table(results: list[dict], full: float, unit: str, epsilon: float) -> str:
    """Mean regret (points) and P(within ε), each [95% interval], at a quarter, half and all of the budget."""
    from search.report import aligned

    marks = [0.25, 0.5, 1.0]
    header = ["strategy", *(f"{m:.0%} of budget: regret [95%], P(≤{epsilon:g}) [95%]" for m in marks),
              "trials", f"{'trial-seconds' if unit == 'seconds' else 'epochs'} used"]
    body = []
    for result in results:
        budgets = np.array(result["budgets"])
        cells = []
        for mark in marks:
            point = result["points"][int(np.argmin(np.abs(budgets - mark * full)))]
            cells.append(f"{shown(point['mean_regret'])} {interval_text(point['mean_regret_ci95'])}, "
                         f"{point['p_within_epsilon']:.2f} {interval_text(point['p_within_epsilon_ci95'])}")
        body.append([result["strategy"], *cells, f"{result['median_trials']:.0f}",
                     f"{result['median_spent']:.0f} of {full:.0f}"])
    return aligned([header, *body])


def plot(results: list[dict], path: Path, epsilon: float, unit: str) -> Path:
    """Mean held-out regret against compute, with its 95% band, one line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(11, 5.5), dpi=110)
    colours = plt.get_cmap("tab20" if len(results) > 10 else "tab10")
    bands = len(results) <= 4  # the bands of more strategies hide each other
    for index, result in enumerate(results):
        budgets = np.array(result["budgets"])
        mean = np.array([math.nan if p["mean_regret"] is None else p["mean_regret"] for p in result["points"]])
        low, high = (np.array([math.nan if p["mean_regret_ci95"] is None else p["mean_regret_ci95"][i]
                               for p in result["points"]]) for i in (0, 1))
        picked = np.isfinite(mean)
        style = "--" if result["options"]["scheduler"] == "none" else "-"
        line, = axis.plot(budgets[picked], mean[picked], style, marker="o", markersize=3, label=result["strategy"],
                          color=colours(index % colours.N))
        if bands:
            axis.fill_between(budgets[picked], low[picked], high[picked], color=line.get_color(), alpha=0.15)
    axis.axhline(epsilon, color="grey", linestyle=":", label=f"ε = {epsilon:g} points")
    axis.set_xlabel("trial-seconds spent" if unit == "seconds" else "epochs spent (student and teacher)")
    axis.set_ylabel("regret on held-out seeds (accuracy points; mean" + (", 95% band)" if bands else ")"))
    axis.set_title("Regret of each strategy's pick against compute (dashed: no early stopping)")
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
