"""The whole pipeline replayed on a recorded grid: search, then confirmation, then the claim, scored on the truth.

  python -m bench.pipeline_replay bench/grids/kd-fewshot-bcpd.parquet [--json PATH]

Each repeat runs a one-seed search on a budget (`search.replay`, the default strategy, 2 trials at a time), takes
its top distinct configurations and the baseline (the first of the table's recorded baselines whose parameters it
spans; for tables recorded before the search wrote them, the published setting in `PUBLISHED`) as the
confirmation's candidates, and races them (`search.race`, margin 1 point) on recorded seeds the search did not see.
The seeds left after the search's and the race's are the truth the claim is scored on, so no seed both decides
and grades it: the race may use at most `RACE_SHARE` of the held-out seeds (3 then 4 of an 8-seed grid, 3 left to
score on). The recorded final validation accuracy stands in for the test accuracy a live confirmation measures.
The claim (the best, the configurations not found worse, each verdict against the best) is right when the best
configuration on the scoring seeds is in the claimed set and no verdict is false (worse: below the claimed best on
the scoring seeds; equivalent: within the margin of it). Intervals resample the grid's seeds (the search's with
its repeats, and the scoring seeds' weights) as `search.replay`'s do. The compute is the search's budget plus one
full trial per confirmation run.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search import race, replay
from search.grid_truth import GridTruth
from search.options import CONFIRM_MAX_SEEDS, MARGIN_POINTS
from search.simulate import Budget, replay as simulate
from search.stats import EQUIVALENT, WORSE
from search.strategies import Strategy, space_for

REPEATS = 48
EPSILON = 0.5
RACE_SHARE = 0.6  # the most of the held-out seeds a race may take; the rest score its claim
PUBLISHED = {  # the confirmation's first baseline per search, for tables whose metadata does not record it
    "mcmi_lambda": {"lam": 0.0, "mcmi.lam": 0.0},  # the λ = 0 control
    "kd_temperature": {"kd.temperature": 4.0, "kd.alpha": 0.9},
    "distiller_dkd": {"dkd.alpha": 1.0, "dkd.beta": 8.0, "dkd.temperature": 4.0},
}


@dataclass(frozen=True)
class Pipeline:
    """A search budget (trials run to the end), how many of its best the confirmation takes, and the race's seeds."""

    search_trials: int
    top: int
    first: int
    most: int

    def label(self) -> str:
        race_text = f"race {self.first}→{self.most} seeds" if self.most > self.first else f"{self.first} seeds, no race"
        return f"search {self.search_trials} trials, top {self.top} + baseline, {race_text}"


PIPELINES = (
    Pipeline(16, 3, 3, CONFIRM_MAX_SEEDS),  # today's defaults (the race's M capped by RACE_SHARE)
    Pipeline(16, 3, 3, 3),
    Pipeline(8, 5, 3, CONFIRM_MAX_SEEDS),
    Pipeline(8, 3, 3, CONFIRM_MAX_SEEDS),
)


@dataclass(frozen=True)
class Claim:
    """One repeat's outcome: its search seed column, the seed columns that score it, the claimed best, the claimed
    set, the verdicts (configuration index -> word) and the compute spent (epochs)."""

    seed_column: int
    scoring: tuple[int, ...]
    best: int | None
    contenders: tuple[int, ...]
    verdicts: dict[int, str]
    epochs: float


def baseline_of(recorded, metadata: dict) -> int | None:
    """The recorded configuration nearest the confirmation's first baseline, None where the search has none."""
    given = [b["config"] for b in metadata.get("baselines", []) if set(b["config"]) <= set(recorded.params)]
    published = given[0] if given else PUBLISHED.get(metadata.get("search"))
    if not published:
        return None
    return recorded.nearest({name: published.get(name, recorded.configs[0][name]) for name in recorded.params})


def run_pipeline(recorded, truth: GridTruth, pipeline: Pipeline, space, points: list[dict], baseline: int | None,
                 seed: int) -> list[Claim]:
    """`REPEATS` pipelines, the search seeds taken in turn, each racing on the seeds after its own and scored on the
    ones after those."""
    strategy = Strategy().check(recorded.max_t)
    cost = recorded.full_trial_cost("epochs")
    seeds = recorded.seeds()
    claims = []
    for repeat in range(REPEATS):
        column = repeat % len(seeds)
        budget = pipeline.search_trials * cost
        events = simulate(recorded, strategy, space_for(strategy, space), points, None, 2, seed * 100_003 + repeat,
                          seeds[column], Budget(budget))
        ranked = [i for i in events[-1].ranked if i != baseline][:pipeline.top]
        keys = ([baseline] if baseline is not None else []) + ranked
        held_out = [seeds[(column + k) % len(seeds)] for k in range(1, len(seeds))]
        most = min(pipeline.most, int(RACE_SHARE * len(held_out)))
        first = min(pipeline.first, most)
        racing, scoring = held_out[:most], held_out[most:]
        results = {str(k): {s: float(truth.finals[k, truth.column(s)]) for s in racing} for k in keys}
        contest = race.run(results, [str(k) for k in keys], racing, first, most, MARGIN_POINTS / 100)
        used = sum(d.seeds for d in contest.decisions.values())
        best = int(contest.best) if contest.best is not None else None
        claims.append(Claim(truth.column(seeds[column]), tuple(truth.column(s) for s in scoring), best,
                            tuple(int(k) for k in contest.contenders()),
                            {int(k): d.word for k, d in contest.decisions.items() if best is None or int(k) != best},
                            budget + used * cost))
    return claims


def scores(claims: list[Claim], truth: GridTruth, weights: np.ndarray) -> dict[str, float]:
    """Shares of the claims that hold on their scoring seeds (each seed counted `weights` times); a claim a resample
    left no scoring seed is left out, a race that named no best is wrong."""
    margin = MARGIN_POINTS / 100
    found = {"p_right": [], "p_contains_best": [], "p_verdicts_true": [], "p_best_within_epsilon": []}
    for claim in claims:
        kept = np.zeros_like(weights)
        kept[list(claim.scoring)] = weights[list(claim.scoring)]
        if not kept.any():
            continue
        values = truth.truth(kept)
        best = int(np.nanargmax(values))
        if claim.best is None:
            for name in found:
                found[name].append(False)
            continue
        gaps = {k: values[claim.best] - values[k] for k in claim.verdicts}
        true = all(gaps[k] > 0 if word == WORSE else abs(gaps[k]) <= margin if word == EQUIVALENT else True
                   for k, word in claim.verdicts.items())
        contains = best in claim.contenders
        found["p_right"].append(contains and true)
        found["p_contains_best"].append(contains)
        found["p_verdicts_true"].append(true)
        found["p_best_within_epsilon"].append(100 * (values[best] - values[claim.best]) <= EPSILON + 1e-9)
    return {name: float(np.mean(values)) if values else math.nan for name, values in found.items()}


def measured(claims: list[Claim], truth: GridTruth, seed: int) -> dict:
    """The scores, each with a 95% interval over resamples of the seeds (and of the repeats with them)."""
    columns = np.array([c.seed_column for c in claims])
    point = scores(claims, truth, np.ones(len(truth.seeds)))
    draws = [scores([claims[i] for i in r.repeats], truth, r.weights) for r in truth.resamples(columns, seed=seed)]
    out = {name: {"value": value, "ci95": [float(q) for q in np.nanpercentile([d[name] for d in draws], [2.5, 97.5])]}
           for name, value in point.items()}
    out["epochs"] = float(np.mean([c.epochs for c in claims]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline_replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", nargs="+", help="recorded grids (trials.parquet with several seeds)")
    parser.add_argument("--json", help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    replay.quiet()
    found = {}
    for table in args.tables:
        recorded, metadata = replay.load(Path(table), None)
        truth = GridTruth.of(recorded.curves)
        if len(recorded.seeds()) < 8:
            print(f"{table}: {len(recorded.seeds())} seeds: too few to search, race and score on separate seeds; "
                  "left out (8 or more are needed)")
            continue
        space = replay.space_of(recorded, metadata.get("ranges"))
        points = replay.first_points(recorded, metadata)
        stability = truth.stability()
        baseline = baseline_of(recorded, metadata)
        print(f"{table}: {len(recorded.configs)} configurations × {len(truth.seeds)} seeds, stability {stability:.0%}; "
              f"a trial run to the end costs {recorded.full_trial_cost('epochs'):.0f} epochs; baseline "
              f"{recorded.configs[baseline] if baseline is not None else 'none'}; a race may use "
              f"{int(RACE_SHARE * (len(truth.seeds) - 1))} seeds per configuration here, the other "
              f"{len(truth.seeds) - 1 - int(RACE_SHARE * (len(truth.seeds) - 1))} score the claim")
        rows = {}
        for pipeline in PIPELINES:
            claims = run_pipeline(recorded, truth, pipeline, space, points, baseline, 0)
            rows[pipeline.label()] = measured(claims, truth, 0)
            result = rows[pipeline.label()]
            print(f"  {pipeline.label()}: P(claim right) {interval_text(result['p_right'])}, P(claimed set holds the "
                  f"best) {interval_text(result['p_contains_best'])}, P(every verdict true) "
                  f"{interval_text(result['p_verdicts_true'])}, P(claimed best within {EPSILON:g}) "
                  f"{interval_text(result['p_best_within_epsilon'])}; {result['epochs']:.0f} epochs", flush=True)
        found[table] = {"stability": stability, "seeds": len(truth.seeds), "pipelines": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(found, indent=2))
        print(f"numbers: {args.json}")
    return 0


def interval_text(measure: dict) -> str:
    low, high = measure["ci95"]
    return f"{measure['value']:.2f} [{low:.2f}, {high:.2f}]" if math.isfinite(low) else f"{measure['value']:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
