"""How far an early epoch can be trusted: does a configuration's validation accuracy at epoch e rank the
configurations as their final accuracy does? What ASHA's rungs bet on, measured.

  python -m search.fidelity results/grid/trials.parquet --reduction-factor 3 [--json PATH]

From a recorded grid (several seeds per configuration), per epoch, Spearman's ρ between the configurations'
values at that epoch and their final values, never grading a seed against itself: one seed's epoch against the
other seeds' final mean (leave one seed out; a rung sees one seed), and half the seeds' mean against the other
half's final mean (split-half). The split-half ρ of the final values themselves is the ceiling an early epoch can be
expected to reach: how well the final ranking reproduces across seeds. Each ρ has a bootstrap 95% CI over configurations.
Also the probability that a rung at that epoch (keeping the top 1/rf, one seed per configuration) stops the
configuration that is best on the seeds the rung did not see. A search reports ρ from its own trials that ran
to the end (`search_trust`); there each trial's epoch and final value share their seed, so it reads high.
"""
from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import stats

from distill.cli import ArgumentParser, check_output_file, run_cli, write_output
from distill.errors import UserError
from search import curves
from search.options import METRIC, TIME_ATTR
from trainables.metrics import STUDENT

MIN_TRIALS = 4  # a recorded grid needs at least this many configurations for a rank correlation
MIN_SEARCH_TRIALS = 8  # a search's own ρ needs this many trials that ran to the end: with 4, ρ swings from −1 to 1
WEAK = 0.5  # a first-rung correlation surely below this makes early stopping a coin flip: the search warns
TRUST_METRIC = "early_rank_corr"  # the parent run's metric: ρ at each student epoch (its step)
DRAWS = 2000  # Monte Carlo draws (one seed per configuration) for the chance a rung stops the best


SPLITS = 40  # split-halves of the seeds at most (all of them when there are fewer)
RESAMPLES = 1000  # bootstrap resamples of the configurations


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ, NaN where either side is constant (scipy warns and gives NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(x, y).statistic)


def interval(statistic, count: int, seed: int) -> tuple[float, float]:
    """Bootstrap 95% CI (percentile) of `statistic(indices)` over resampled configurations. A resample whose
    statistic is undefined (ρ of a side with tied values only) is left out, not allowed to make the whole interval
    NaN; NaN only when no resample is defined."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        draws = stats.bootstrap((np.arange(count),), statistic, vectorized=False, n_resamples=1000,
                                confidence_level=0.95, method="percentile", random_state=seed).bootstrap_distribution
        low, high = np.nanpercentile(draws, [2.5, 97.5]) if np.isfinite(draws).any() else (math.nan, math.nan)
    return float(low), float(high)


def rank_corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's ρ between x and y along axis −2 (the configurations), for every other index at once; NaN where a
    side is constant."""
    rx, ry = (stats.rankdata(v, axis=-2) for v in (x, y))
    rx, ry = rx - rx.mean(axis=-2, keepdims=True), ry - ry.mean(axis=-2, keepdims=True)
    denominator = np.sqrt((rx ** 2).sum(axis=-2) * (ry ** 2).sum(axis=-2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rx * ry).sum(axis=-2) / np.where(denominator > 0, denominator, 1), np.nan)


def averaged(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[float, tuple[float, float]]:
    """The mean over columns of ρ(x[:, k], y[:, k]), and its bootstrap 95% CI over resampled configurations
    (resamples where every column is undefined are left out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimate = float(np.nanmean(rank_corr(x, y)))
        rows = np.random.default_rng(seed).integers(len(x), size=(RESAMPLES, len(x)))
        draws = np.nanmean(rank_corr(x[rows], y[rows]), axis=-1)
    finite = draws[np.isfinite(draws)]
    return estimate, ((float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))) if len(finite)
                      else (math.nan, math.nan))


def split_halves(seeds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Splits of the seeds into two halves, (the other seeds, a half of ⌊n/2⌋): with an even count every split
    appears both ways round, with an odd one the larger half is graded against the smaller; all of them when there
    are at most `SPLITS`, else that many drawn."""
    import itertools

    half = seeds // 2
    every = [np.array(a) for a in itertools.combinations(range(seeds), half)]
    if len(every) > SPLITS:
        rng = np.random.default_rng(seed)
        every = [every[i] for i in rng.choice(len(every), size=SPLITS, replace=False)]
    return [(np.setdiff1d(np.arange(seeds), a), a) for a in every]


def student_values(rows: list[dict], params: Sequence[str]) -> dict[tuple, dict[int, dict[int, float]]]:
    """configuration -> seed -> student epoch -> validation accuracy, from a table's rows (search stage)."""
    found: dict[tuple, dict[int, dict[int, float]]] = {}
    for row in rows:
        if (row.get("phase") or STUDENT) != STUDENT or row.get(METRIC) is None:
            continue
        key = tuple((name, row[name]) for name in params)
        found.setdefault(key, {}).setdefault(int(row["seed"]), {})[int(row[TIME_ATTR])] = float(row[METRIC])
    return found


def grid_trust(values: np.ndarray, reduction_factor: float, seed: int = 0) -> tuple[list[dict], dict]:
    """Per epoch, from `values[config, seed, epoch]` (complete curves): ρ of one seed against the other seeds' final
    mean, and of half the seeds against the other half's final mean, with CIs; and P(a rung at that epoch stops the
    configuration best on the seeds it did not see). Also the ceiling: the split-half ρ of the final values."""
    configs, seeds, epochs = values.shape
    final = values[:, :, -1]
    others_final = (final.sum(axis=1, keepdims=True) - final) / (seeds - 1)  # [config, seed]: the other seeds' mean
    splits = split_halves(seeds, seed)
    halves_final = np.stack([final[:, b].mean(axis=1) for _, b in splits], axis=1)  # [config, split]
    rng = np.random.default_rng(seed)
    draws = rng.integers(seeds, size=(DRAWS, configs))
    held_out_best = np.argmax(others_final[np.arange(configs), draws], axis=1)  # per draw: best without its seed
    ceiling, ceiling_ci = averaged(np.stack([final[:, a].mean(axis=1) for a, _ in splits], axis=1), halves_final, seed)
    out = []
    for epoch in range(epochs):
        single = values[:, :, epoch]
        one_rho, one_ci = averaged(single, others_final, seed)
        halves = np.stack([single[:, a].mean(axis=1) for a, _ in splits], axis=1)
        half_rho, half_ci = averaged(halves, halves_final, seed)
        seen = single[np.arange(configs), draws]  # one seed per configuration, as a rung sees them
        cutoffs = np.percentile(seen, (1 - 1 / reduction_factor) * 100, axis=1)
        out.append({
            "epoch": epoch + 1,
            "rho_single_seed": one_rho, "rho_single_seed_ci95": one_ci,
            "rho_split_half": half_rho, "rho_split_half_ci95": half_ci,
            "p_rung_stops_best": float(np.mean(seen[np.arange(DRAWS), held_out_best] < cutoffs)),
        })
    return out, {"rho": ceiling, "rho_ci95": ceiling_ci, "splits": len(splits)}


def search_trust(rows: list[dict], max_t: int, seed: int = 0) -> list[dict]:
    """Per epoch, ρ between a search's trials' values at that epoch and their final values, over the trials that
    ran to `max_t` (one seed each), with a bootstrap CI; empty with fewer than `MIN_SEARCH_TRIALS` such trials."""
    curves_of: dict[str, dict[int, float]] = {}
    for row in rows:
        if (row.get("phase") or STUDENT) == STUDENT and row.get(METRIC) is not None:
            curves_of.setdefault(row["trial_id"], {})[int(row[TIME_ATTR])] = float(row[METRIC])
    full = [c for c in curves_of.values() if all(e in c for e in range(1, max_t + 1))]
    if len(full) < MIN_SEARCH_TRIALS:
        return []
    values = np.array([[c[e] for e in range(1, max_t + 1)] for c in full])
    final = values[:, -1]
    return [{"epoch": e + 1, "rho": spearman(values[:, e], final),
             "rho_ci95": interval(lambda i, e=e: spearman(values[i, e], final[i]), len(full), seed),
             "trials": len(full)} for e in range(max_t)]


def trust_lines(trust: list[dict], first_rung: int | None, finished: int | None = None) -> list[str]:
    """What a search says about its own early epochs: ρ at each epoch with its 95% interval, and a warning only when
    the interval lies wholly below `WEAK` and does not span 0 (an interval that spans 0 has measured nothing to warn
    on); with too few trials that ran to the end (`finished`), that it did not measure it."""
    if not trust:
        return [] if finished is None else [
            f"Early-epoch trust: not measured: {finished} trial{'s' if finished != 1 else ''} ran to the end, "
            f"{MIN_SEARCH_TRIALS} are needed (python -m search.fidelity measures it on a recorded grid)."]
    shown = ", ".join(f"{t['epoch']}: {t['rho']:.2f} [{t['rho_ci95'][0]:.2f}, {t['rho_ci95'][1]:.2f}]" for t in trust)
    lines = [f"Early-epoch trust: Spearman ρ [95% interval] between each student epoch's validation accuracy and the "
             f"final one, over the {trust[0]['trials']} trials that ran to the end: {shown}."]
    if first_rung is not None and first_rung <= len(trust):
        at = trust[first_rung - 1]
        low, high = at["rho_ci95"]
        if math.isfinite(high) and high < WEAK and not low <= 0 <= high:
            lines.append(f"warning: at ASHA's first rung (epoch {first_rung}) ρ is {at['rho']:.2f} (95% CI "
                         f"{low:.2f} to {high:.2f}): early stopping there ranks these configurations little better "
                         f"than chance; a later --grace-period, or --scheduler none, spends compute where it decides "
                         f"something")
    return lines


def recorded_grid(path: Path, params: list[str] | None = None, max_t: int | None = None) -> tuple[np.ndarray, list]:
    """values[config, seed, epoch] of a recorded grid: configurations that have every seed's whole curve. A table
    whose metadata does not name its parameters or max_t needs them given."""
    table, metadata = curves.read(path)
    curves.require_curve_columns(table, path)
    params = curves.table_params(table, metadata, path, params)
    curves.check_rows(table, path, params)
    max_t = curves.table_max_t(metadata, path, max_t)
    rows = [row for row in table.to_pylist() if row.get("stage", curves.SEARCH_STAGE) == curves.SEARCH_STAGE]
    found = student_values(rows, params)
    seeds = sorted({s for runs in found.values() for s in runs})
    complete = {k: runs for k, runs in found.items()
                if all(s in runs and all(e in runs[s] for e in range(1, max_t + 1)) for s in seeds)}
    if len(complete) < MIN_TRIALS or len(seeds) < 2:
        raise UserError(f"{path} holds {len(complete)} configurations with every seed's whole curve and "
                        f"{len(seeds)} seed(s): record a grid with at least {MIN_TRIALS} points and 2 seeds "
                        "(--sampler grid --grid-seeds S --scheduler none)")
    keys = sorted(complete, key=str)
    values = np.array([[[complete[k][s][e] for e in range(1, max_t + 1)] for s in seeds] for k in keys])
    return values, keys


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m search.fidelity", description=__doc__)
    parser.add_argument("table", help="a recorded grid's trials.parquet")
    parser.add_argument("--reduction-factor", type=float, default=3.0, help="the rung's rf: it keeps the top 1/rf "
                        "(default: 3)")
    parser.add_argument("--params", nargs="+", metavar="NAME", help="the parameter columns (a search's table says "
                        "them in its metadata)")
    parser.add_argument("--max-t", type=int, help="the epochs a trial runs to the end (a search's table says it)")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    if args.reduction_factor <= 1:
        raise UserError(f"--reduction-factor must be above 1, got {args.reduction_factor:g}")
    check_output_file(args.json, "--json")
    values, keys = recorded_grid(Path(args.table), args.params, args.max_t)
    trust, ceiling = grid_trust(values, args.reduction_factor)
    print(f"{args.table}: {len(keys)} configurations × {values.shape[1]} seeds × {values.shape[2]} epochs")
    print(f"ceiling: the final ranking reproduces across halves of the seeds with ρ {ceiling['rho']:.2f} "
          f"[{ceiling['rho_ci95'][0]:.2f}, {ceiling['rho_ci95'][1]:.2f}] ({ceiling['splits']} split-halves); no early "
          "epoch can be expected to rank better than the final ranking reproduces")
    from search.report import aligned

    def rho(t: dict, key: str) -> str:
        return f"{t[key]:.2f} [{t[key + '_ci95'][0]:.2f}, {t[key + '_ci95'][1]:.2f}]"

    header = ["epoch", "ρ one seed vs the others' final [95% CI]", "ρ half vs the other half's final [95% CI]",
              f"P(rung, rf {args.reduction_factor:g}, stops the best)"]
    body = [[t["epoch"], rho(t, "rho_single_seed"), rho(t, "rho_split_half"), f"{t['p_rung_stops_best']:.2f}"]
            for t in trust]
    print(aligned([header, *body]))
    if args.json:
        write_output(args.json, json.dumps({"table": args.table, "configurations": [dict(k) for k in keys],
                                            "reduction_factor": args.reduction_factor, "ceiling": ceiling,
                                            "epochs": trust}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
