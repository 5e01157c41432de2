"""The evidence behind the search's defaults: every candidate strategy replayed on the recorded grids, at equal
compute, scored on held-out seeds, with the grids' own noise in every interval.

  python -m bench.defaults_replay            # writes bench/grids/defaults-replay.json

For each grid in `bench/grids/` and each budget (8 and 16 trials run to the end, in epochs, teacher stages
included), every candidate runs 48 simulated searches (2 trials at a time, one recorded seed per search, taking the
seeds in turn) and is scored on the seeds its search did not see (`search.replay`). Each cell's intervals come
from one cluster bootstrap over the grid's seeds shared by all candidates, so a candidate's difference from the
default is paired. The summary averages the cells: P(the final pick is within 0.5 points of the best) and the mean
regret, each with its 95% interval and its difference from today's default. First it says how far the Gaussian
process of `--pick model` could stand in for repeated seeds as a noise estimate. Each grid's stability (how often a
resample of its seeds keeps its best the best) is printed beside it: a grid below 90% cannot separate strategies.
"""
from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from search import replay
from search.grid_truth import GridTruth, mean_regret, within_share
from search.simulate import Budget
from search.strategies import Strategy

GRIDS = ("lambda", "kd", "dkd", "kd-fewshot")
BUDGET_TRIALS = (8, 16)
REPEATS = 48
EPSILON = 0.5
DEFAULT = Strategy()
CANDIDATES = (
    DEFAULT,
    Strategy(sampler="tpe-sobol"),
    Strategy(grace_period=3),
    Strategy(reduction_factor=2),
    Strategy(pick="model"),
    Strategy(sampler="random"),
    Strategy(scheduler="none"),
    Strategy(sampler="tpe-sobol", scheduler="none"),
    Strategy(sampler="random", scheduler="none"),
    Strategy(sampler="gp", scheduler="none"),
    Strategy(sampler="grid", scheduler="none"),
)
FOLDER = Path(__file__).parent / "grids"


def cell(path: Path, trials: int, seed: int = 0) -> dict:
    """One grid at one budget: per candidate, P(within ε) and mean regret at the budget's end with their bootstrap
    draws (shared across candidates), trials finished and compute spent."""
    recorded, metadata = replay.load(path, None)
    truth = GridTruth.of(recorded.curves)
    space = replay.space_of(recorded, metadata.get("ranges"))
    points = replay.first_points(recorded, metadata)
    size = replay.Size(budget=Budget(trials * recorded.full_trial_cost("epochs")))
    grid = replay.grid_of(recorded)
    found, resamples = {}, None
    for candidate in CANDIDATES:
        strategy = replace(candidate, grid=grid if candidate.sampler == "grid" else {}).check(recorded.max_t)
        runs = replay.run_strategy(recorded, truth, strategy, space, points, size, 2, REPEATS, seed)
        resamples = resamples or truth.resamples(runs.search_seeds, seed=seed)
        point, regrets = replay.regret_draws(runs, truth, resamples)
        final, draws = point[:, -1], [d[:, -1] for d in regrets]
        found[label(candidate)] = {
            "p_within": within_share(final, EPSILON), "p_within_draws": [within_share(d, EPSILON) for d in draws],
            "regret": mean_regret(final), "regret_draws": [nan_if_none(mean_regret(d)) for d in draws],
            "trials": float(np.median(runs.trials)), "spent_share": float(np.median(runs.spent) / size.total(recorded))}
    return {"stability": truth.stability(seed=seed), "seeds": len(truth.seeds), "budget": size.total(recorded),
            "strategies": found}


def noise_term(model, values: Sequence[float]) -> float:
    """The white-noise sd of a fitted `gaussian_process`, in the values' units (it fits them normalised)."""
    return math.sqrt(model.kernel_.k2.noise_level) * (float(np.std(values)) or 1.0)


def gp_noise(grid: str, draws: int = 20) -> dict:
    """The seed sd the grid's repeated seeds measure, against the noise term of the `model` pick's Gaussian process
    fitted to one drawn seed per configuration (what a one-seed search would see), over `draws` draws."""
    from search import picks
    from search.options import METRIC, TIME_ATTR

    recorded, _ = replay.load(FOLDER / f"{grid}-bcpd.parquet", None)

    def row(config: dict, reports: list) -> dict:
        return {"config": config, "state": "complete", "metrics": {METRIC: reports[-1].value, TIME_ATTR: recorded.max_t}}

    seeded = [row({**c, "seed": s}, r) for c, runs in zip(recorded.configs, recorded.curves) for s, r in runs.items()]
    rng = np.random.default_rng(0)
    terms = []
    for _ in range(draws):
        rows = [row(c, runs[sorted(runs)[rng.integers(len(runs))]]) for c, runs in zip(recorded.configs,
                                                                                       recorded.curves)]
        model, _ = picks.gaussian_process(rows, recorded.params, recorded.log_params, 0)
        terms.append(100 * noise_term(model, [r["metrics"][METRIC] for r in rows]))
    return {"seed_sd_points": 100 * picks.seed_noise(seeded).sd, "gp_noise_points": sorted(terms)}


def label(strategy: Strategy) -> str:
    """A candidate's name, with ASHA's default first rung named as such (it is half of each grid's epochs)."""
    text = strategy.label()
    return text.replace("asha (grace None", "asha (grace half") if strategy.grace_period is None else text


def nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


def interval(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    return (float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))) if finite else (math.nan, math.nan)


def summary(cells: dict[str, dict], keys: Sequence[str]) -> dict[str, dict]:
    """Per candidate, over the cells `keys`: mean P(within ε) and mean regret with 95% intervals, and their
    differences from the default with intervals (draw by draw: the cells' bootstraps are independent, the
    candidates' within a cell paired)."""
    out = {}
    base = label(DEFAULT)
    for name in cells[keys[0]]["strategies"]:
        measures = {}
        for measure in ("p_within", "regret"):
            value = np.mean([cells[k]["strategies"][name][measure] for k in keys])
            draws = np.mean([cells[k]["strategies"][name][f"{measure}_draws"] for k in keys], axis=0)
            base_draws = np.mean([cells[k]["strategies"][base][f"{measure}_draws"] for k in keys], axis=0)
            base_value = np.mean([cells[k]["strategies"][base][measure] for k in keys])
            measures[measure] = {"value": float(value), "ci95": interval(draws), "vs_default": float(value - base_value),
                                 "vs_default_ci95": interval(draws - base_draws)}
        out[name] = measures
    return out


def table(cells: dict[str, dict], keys: Sequence[str]) -> str:
    """Markdown: each candidate's P(within ε) per cell, then over the cells with its interval and its difference from
    the default, and the mean regret likewise."""
    found = summary(cells, keys)
    head = [f"{k} ({cells[k]['stability']:.0%})" for k in keys]
    lines = ["| strategy | " + " | ".join(head) + " | P(≤0.5) over cells [95%] | vs default [95%] | regret [95%] | "
             "vs default [95%] |", "|---" * (len(keys) + 5) + "|"]
    for name, measures in sorted(found.items(), key=lambda item: -item[1]["p_within"]["value"]):
        p, r = measures["p_within"], measures["regret"]
        per_cell = [f"{cells[k]['strategies'][name]['p_within']:.2f}" for k in keys]
        lines.append(f"| {name} | " + " | ".join(per_cell)
                     + f" | {p['value']:.2f} [{p['ci95'][0]:.2f}, {p['ci95'][1]:.2f}] | {p['vs_default']:+.2f} "
                     f"[{p['vs_default_ci95'][0]:+.2f}, {p['vs_default_ci95'][1]:+.2f}] | {r['value']:.2f} "
                     f"[{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}] | {r['vs_default']:+.2f} "
                     f"[{r['vs_default_ci95'][0]:+.2f}, {r['vs_default_ci95'][1]:+.2f}] |")
    return "\n".join(lines)


def without_draws(cells: dict[str, dict]) -> dict[str, dict]:
    """The cells as the JSON keeps them: the bootstrap draws (a thousand per number) are summarised, not stored."""
    return {key: {**cell, "strategies": {name: {k: v for k, v in measures.items() if not k.endswith("_draws")}
                                         for name, measures in cell["strategies"].items()}}
            for key, cell in cells.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.defaults_replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=str(FOLDER / "defaults-replay.json"), help="where the numbers go")
    parser.add_argument("--grids", nargs="+", default=list(GRIDS), help="grid names (bench/grids/NAME-bcpd.parquet)")
    args = parser.parse_args(argv)
    replay.quiet()
    noise = {}
    for grid in args.grids:
        noise[grid] = gp_noise(grid)
        terms = noise[grid]["gp_noise_points"]
        print(f"{grid}: seed sd {noise[grid]['seed_sd_points']:.2f} points; the GP's noise term on one seed per "
              f"configuration, {len(terms)} draws: {terms[0]:.2f} to {terms[-1]:.2f} (median {terms[len(terms) // 2]:.2f})")
    cells = {}
    for grid in args.grids:
        for trials in BUDGET_TRIALS:
            key = f"{grid} {trials}"
            cells[key] = cell(FOLDER / f"{grid}-bcpd.parquet", trials)
            print(f"{key}: stability {cells[key]['stability']:.0%}, {cells[key]['seeds']} seeds, budget "
                  f"{cells[key]['budget']:.0f} epochs", flush=True)
    Path(args.json).write_text(json.dumps({"cells": without_draws(cells), "summary": summary(cells, list(cells)),
                                           "gp_noise": noise}, indent=2))
    stable = [k for k in cells if cells[k]["stability"] >= 0.9]
    print("\nAll cells:\n" + table(cells, list(cells)))
    if stable:
        print("\nCells whose grid keeps its best in ≥ 90% of seed resamples:\n" + table(cells, stable))
    print(f"\nnumbers: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
