"""Replay search strategies on recorded learning curves: regret against compute, in seconds, without training.

  python -m search.replay results/grid/trials.parquet --sampler tpe random --scheduler asha none \\
      --grace-period 3 --reduction-factor 2 --workers 2 --trials 16 --repeats 50 --seed 0 --json replay.json

Each strategy (every combination of the --sampler, --scheduler, --grace-period and --reduction-factor
values given) runs `--repeats` simulated searches of `--trials` trials (`search.simulate`: the real Ray
scheduler and Optuna searcher). A configuration's true value is its mean final validation accuracy over
the table's seeds; regret is the best true value minus the true value of the configuration the strategy
would answer at that point (the search's own pick rule). Reported per budget point: the median regret
over repeats with its interquartile range and a bootstrap 95% CI, and P(the pick is within ε of the best).
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import numpy as np
import optuna
import pyarrow.compute as pc
from scipy import stats as scipy_stats

from distill.cli import ArgumentParser, run_cli
from distill.errors import UserError
from search import curves, ties
from search.options import METRIC, TIME_ATTR
from search.simulate import Event, Recorded, Report, replay
from search.picks import PICKS
from search.strategies import SAMPLERS, SCHEDULERS, Strategy, space_for
from trainables.metrics import STUDENT

BUDGET_POINTS = 10  # regret is reported at these many even fractions of the full budget (trials x max_t epochs)
DEFAULT = Strategy()


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m search.replay", description=__doc__)
    parser.add_argument("table", help="a Parquet table: a search's trials.parquet, a recorded grid's, or your own "
                        "with parameter columns, seed, student_epoch and student_val_acc (seconds optional)")
    parser.add_argument("--params", nargs="+", metavar="NAME", help="the searched parameters (default: those the "
                        "table's metadata names; required for a table without it)")
    parser.add_argument("--sampler", nargs="+", default=[DEFAULT.sampler], choices=SAMPLERS.names(),
                        help=f"samplers to compare (default: {DEFAULT.sampler})")
    parser.add_argument("--scheduler", nargs="+", default=[DEFAULT.scheduler], choices=SCHEDULERS.names(),
                        help=f"schedulers to compare (default: {DEFAULT.scheduler})")
    parser.add_argument("--grace-period", nargs="+", type=int,
                        help="ASHA grace periods to compare (default: a search's, half of the table's epochs)")
    parser.add_argument("--reduction-factor", nargs="+", type=float, default=[DEFAULT.reduction_factor],
                        help=f"ASHA reduction factors to compare (default: {DEFAULT.reduction_factor:g})")
    parser.add_argument("--asha-window", nargs="+", type=int, default=[DEFAULT.window],
                        help=f"ASHA windows to compare: the mean of the last K epochs (default: {DEFAULT.window})")
    parser.add_argument("--pick", nargs="+", default=[DEFAULT.pick], choices=PICKS.names(),
                        help=f"pick rules to compare (default: {DEFAULT.pick})")
    parser.add_argument("--workers", type=int, default=2, help="trials at once (default: 2)")
    parser.add_argument("--trials", type=int, default=16, help="trials per simulated search (default: 16)")
    parser.add_argument("--repeats", type=int, default=50, help="simulated searches per strategy (default: 50)")
    parser.add_argument("--seed", type=int, default=0, help="seeds every repeat's sampler and seed draws (default: 0)")
    parser.add_argument("--epsilon", type=float, default=0.5,
                        help="a pick within this many accuracy points of the best counts as found (default: 0.5)")
    parser.add_argument("--first-points", choices=["table", "none"], default="table",
                        help="table: try the search's own first points (from the table's metadata) first, as the "
                        "search does; none: sample from the start (default: table)")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    parser.add_argument("--plot", metavar="PATH", help="the regret figure (default: next to the table, replay.png)")
    return parser.parse_args(argv)


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


def load(path: Path, params: list[str] | None) -> tuple[Recorded, dict]:
    """The recorded configurations of a table (its search-stage rows, when it has stages) and its metadata."""
    table, metadata = curves.read(path)
    names = set(table.column_names)
    curves.require_curve_columns(table, path)
    params = params or metadata.get("params")
    if not params:
        raise UserError(f"{path} does not say which columns are its parameters: name them with --params")
    absent = [p for p in params if p not in names]
    if absent:
        raise UserError(f"{path} has no column {absent[0]!r} (--params); its columns: {', '.join(table.column_names)}")
    if "stage" in names:
        table = table.filter(pc.equal(table.column("stage"), curves.SEARCH_STAGE))
    rows = table.to_pylist()
    max_t = int(metadata.get("max_t") or max((r[TIME_ATTR] or 0) for r in rows) or 0)
    if max_t <= 0:
        raise UserError(f"{path} holds no student epoch")
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
    log_params = frozenset(metadata.get("log_params") or ())
    recorded = Recorded(tuple(params), configs, curves_of, np.array(truth), log_params, max_t)
    scale = {}
    for name in params:
        values = [c[name] for c in configs]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            low, high = (min(recorded.transform(name, float(v)) for v in values),
                         max(recorded.transform(name, float(v)) for v in values))
            scale[name] = (low, (high - low) or 1.0)
    return replace(recorded, scale=scale), metadata


def reports_of(rows: list[dict]) -> list[Report]:
    """One run's reports in the order it made them: teacher epochs, then student epochs, then a divergence."""
    order = {"teacher": 0, STUDENT: 1, curves.DIVERGED_PHASE: 2}
    rows = sorted(rows, key=lambda r: (order.get(r.get("phase") or STUDENT, 1), r.get("epoch") or r[TIME_ATTR]))
    found = []
    for row in rows:
        phase = row.get("phase") or STUDENT
        value = row[METRIC]
        found.append(Report(int(row[TIME_ATTR] or 0) if phase != "teacher" else 0,
                            math.nan if value is None else float(value), float(row.get(curves.SECONDS) or 1.0),
                            phase == curves.DIVERGED_PHASE))
    return found


def table_space(trial, distributions: dict) -> None:
    """The searched parameters as the table spans them (log where the search sampled on a log scale)."""
    for name, (kind, spec) in distributions.items():
        if kind == "categorical":
            trial.suggest_categorical(name, spec)
        else:
            trial.suggest_float(name, *spec[:2], log=spec[2])


def space_of(recorded: Recorded) -> partial:
    distributions = {}
    for name in recorded.params:
        values = [c[name] for c in recorded.configs]
        if name in recorded.scale:
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


def regret_curve(events: list[Event], recorded: Recorded, budgets: np.ndarray) -> np.ndarray:
    """Regret (accuracy) at each budget (student epochs spent): the pick made with the trials finished by then;
    NaN before the first finished trial."""
    best = recorded.truth.max()
    out = np.full(len(budgets), math.nan)
    for i, budget in enumerate(budgets):
        done = [e for e in events if e.student_epochs <= budget and e.pick is not None]
        if done:
            out[i] = best - recorded.truth[done[-1].pick]
    if events and events[-1].pick is not None:  # the search ended: its answer stands for any larger budget
        out[budgets >= events[-1].student_epochs] = best - recorded.truth[events[-1].pick]
    return out


def summarise(regrets: np.ndarray, epsilon: float, seed: int) -> list[dict]:
    """Per budget point: median regret (points), its bootstrap 95% CI, the interquartile range, P(within ε)."""
    points = []
    for values in regrets.T * 100:
        found = np.where(np.isnan(values), np.inf, values)  # no pick yet: never within ε
        finite = values[~np.isnan(values)]
        median = float(np.quantile(found, 0.5, method="inverted_cdf"))
        if len(finite) >= 2 and len(set(finite)) > 1 and len(finite) == len(values):
            ci = scipy_stats.bootstrap((finite,), np.median, confidence_level=0.95, n_resamples=2000,
                                       method="percentile", random_state=seed).confidence_interval
            low, high = float(ci.low), float(ci.high)
        else:
            low = high = median
        q1, q3 = (float(q) for q in np.quantile(found, [0.25, 0.75], method="inverted_cdf"))
        points.append({"median_regret": shown(median), "ci95": [shown(low), shown(high)], "iqr": [shown(q1), shown(q3)],
                       "p_within_epsilon": float(np.mean(found <= epsilon))})
    return points


def shown(value: float) -> float | None:
    """A regret, or None where the repeats had no pick yet (no trial had finished)."""
    return value if math.isfinite(value) else None


def cell(value: float | None) -> str:
    return "no pick" if value is None else f"{value:.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per simulated trial
    logging.getLogger("ray.tune.search.optuna.optuna_search").setLevel(logging.ERROR)  # the grid's end, per repeat
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for flag, value in (("--workers", args.workers), ("--trials", args.trials), ("--repeats", args.repeats)):
        if value < 1:
            raise UserError(f"{flag} must be positive, got {value}")
    path = Path(args.table)
    recorded, metadata = load(path, args.params)
    grid = {name: tuple(sorted({c[name] for c in recorded.configs}, key=str)) for name in recorded.params}
    if "grid" in args.sampler and args.trials > len(recorded.configs):
        raise UserError(f"--sampler grid: the table's grid has {len(recorded.configs)} configurations, fewer than "
                        f"--trials {args.trials}; give --trials {len(recorded.configs)} or fewer")
    strategies = strategies_of(args, grid, recorded.max_t)
    space = space_of(recorded)
    points = [p for p in metadata.get("points", []) if set(p) <= set(recorded.params)] \
        if args.first_points == "table" else []
    budgets = np.linspace(0, args.trials * recorded.max_t, BUDGET_POINTS + 1)[1:]
    best = int(np.argmax(recorded.truth))
    tied = tied_with_best(recorded)
    print(f"{path}: {len(recorded.configs)} configurations, max_t {recorded.max_t}; the best "
          f"{json.dumps(recorded.configs[best], default=str)} at {100 * recorded.truth[best]:.2f}% (mean over its "
          f"{len(recorded.curves[best])} seeds)")
    others = [json.dumps(recorded.configs[i], default=str) for i in np.flatnonzero(tied) if i != best]
    print(f"the seeds cannot tell from the best (the search's tie rule: multiple comparison with the best, "
          f"{1 - ties.ALPHA:.0%}): {', '.join(others) or 'none'}")
    results = []
    for strategy in strategies:
        regrets, spent, seconds, unsupported = [], [], [], []
        for repeat in range(args.repeats):
            first = [] if strategy.sampler == "grid" else points  # a grid has no first points, as in a search
            events = replay(recorded, strategy, space_for(strategy, space), first, args.trials, args.workers,
                            args.seed * 100_003 + repeat)
            regrets.append(regret_curve(events, recorded, budgets))
            spent.append(events[-1].student_epochs if events else 0)
            seconds.append(events[-1].seconds if events else 0.0)
            unsupported.append(not events or events[-1].pick is None or not tied[events[-1].pick])
        results.append({"strategy": strategy.label(), "options": {**asdict(strategy), "workers": args.workers,
                                                                  "trials": args.trials},
                        "budgets": budgets.tolist(), "points": summarise(np.array(regrets), args.epsilon, args.seed),
                        "median_epochs": float(np.median(spent)), "median_seconds": float(np.median(seconds)),
                        "p_unsupported_pick": float(np.mean(unsupported))})
        print(f"  {strategy.label()}: done ({args.repeats} repeats)", flush=True)
    print("\n" + text_table(results, args.trials * recorded.max_t, args.epsilon))
    figure = plot(results, Path(args.plot) if args.plot else path.with_name("replay.png"), args.epsilon)
    print(f"\nfigure: {figure}")
    if args.json:
        payload = {"table": str(path), "best": {"config": recorded.configs[best], "value": float(recorded.truth[best])},
                   "epsilon_points": args.epsilon, "repeats": args.repeats, "seed": args.seed, "strategies": results}
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str))
        print(f"numbers: {args.json}")
    return 0


def text_table(results: list[dict], full: int, epsilon: float) -> str:
    """Median regret (points) [IQR] and P(within ε) at a quarter, half and all of the full budget."""
    from search.report import aligned

    marks = [0.25, 0.5, 1.0]
    header = ["strategy", *(f"{m:.0%} budget: regret [IQR], P(≤{epsilon:g})" for m in marks), "epochs used",
              "seconds", "P(pick not tied with the best)"]
    body = []
    for result in results:
        budgets = np.array(result["budgets"])
        cells = []
        for mark in marks:
            point = result["points"][int(np.argmin(np.abs(budgets - mark * full)))]
            cells.append(f"{cell(point['median_regret'])} [{cell(point['iqr'][0])}, {cell(point['iqr'][1])}], "
                         f"{point['p_within_epsilon']:.2f}")
        body.append([result["strategy"], *cells, f"{result['median_epochs']:.0f} of {full}",
                     f"{result['median_seconds']:.0f}", f"{result['p_unsupported_pick']:.2f}"])
    return aligned([header, *body])


def plot(results: list[dict], path: Path, epsilon: float) -> Path:
    """Median regret against student epochs, with the interquartile band, one line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(11, 5.5), dpi=110)
    colours = plt.get_cmap("tab20" if len(results) > 10 else "tab10")
    bands = len(results) <= 4  # interquartile bands of more strategies hide each other
    for index, result in enumerate(results):
        budgets = np.array(result["budgets"])
        median, low, high = (np.array([math.nan if v is None else v for v in values], dtype=float) for values in (
            [p["median_regret"] for p in result["points"]], [p["iqr"][0] for p in result["points"]],
            [p["iqr"][1] for p in result["points"]]))
        picked = np.isfinite(median)
        style = "--" if result["options"]["scheduler"] == "none" else "-"
        line, = axis.plot(budgets[picked], median[picked], style, marker="o", markersize=3, label=result["strategy"],
                          color=colours(index % colours.N))
        if bands:
            axis.fill_between(budgets[picked], low[picked], high[picked], color=line.get_color(), alpha=0.15)
    axis.axhline(epsilon, color="grey", linestyle=":", label=f"ε = {epsilon:g} points")
    axis.set_xlabel("student epochs spent")
    axis.set_ylabel("regret (accuracy points; median" + (", IQR band)" if bands else ")"))
    axis.set_title("Regret of each strategy's pick against compute (dashed: no early stopping)")
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
