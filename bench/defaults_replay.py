"""The evidence behind the search's defaults: every candidate strategy replayed on the three recorded grids.

  python -m bench.defaults_replay            # about 17 minutes on 2 cores; writes bench/grids/defaults-replay.json

For each grid (λ of MCMI, KD's T × α, DKD's β; `bench/grids/*-bcpd.parquet`) and each search size (8 and 16
trials, 2 at a time), `search.replay` runs every strategy 50 times (seed 0). The table ranks the strategies by
their mean P(pick within 0.5 points of the best) over the six (grid, size) cells, the criterion the defaults were
chosen by, with the worst cell and the student epochs spent as a share of running every trial to the end. First
it says how far the Gaussian process of `--pick model` could stand in for repeated seeds as a noise estimate.
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from search import replay

GRIDS = ("lambda", "kd", "dkd")
SIZES = (8, 16)
CANDIDATES = (  # one replay call each: every combination of its values
    ["--sampler", "tpe", "--scheduler", "asha", "--grace-period", "3", "6", "8", "10", "13", "--reduction-factor", "3"],
    ["--sampler", "tpe", "--scheduler", "asha", "--grace-period", "3", "10", "13", "--reduction-factor", "3", "--pick",
     "model"],
    ["--sampler", "tpe", "--scheduler", "asha", "--grace-period", "3", "--reduction-factor", "2"],
    ["--sampler", "tpe", "random", "gp", "--scheduler", "none", "--pick", "last", "model"],
    ["--sampler", "random", "--scheduler", "asha", "--grace-period", "13", "--reduction-factor", "3"],
)
REPEATS = 50
FOLDER = Path(__file__).parent / "grids"


def measure(folder: Path) -> dict:
    """{strategy: {"grid trials": {p_within, median_regret, epochs_share}}} from every replay call."""
    found: dict[str, dict[str, dict]] = {}
    for grid in GRIDS:
        for trials in SIZES:
            for index, options in enumerate(CANDIDATES):
                out = folder / f"{grid}-{trials}-{index}.json"
                replay.main([str(FOLDER / f"{grid}-bcpd.parquet"), *options, "--trials", str(trials), "--repeats",
                             str(REPEATS), "--seed", "0", "--json", str(out), "--plot", str(out.with_suffix(".png"))])
                for result in json.loads(out.read_text())["strategies"]:
                    final = result["points"][-1]
                    found.setdefault(result["strategy"], {}).setdefault(f"{grid} {trials}", {
                        "p_within": final["p_within_epsilon"], "median_regret": final["median_regret"],
                        "epochs_share": result["median_epochs"] / (trials * 20),
                        "p_unsupported_pick": result["p_unsupported_pick"]})
    return found


def noise_term(model, values: Sequence[float]) -> float:
    """The white-noise sd of a fitted `gaussian_process`, in the values' units (it fits them normalised)."""
    return math.sqrt(model.kernel_.k2.noise_level) * (float(np.std(values)) or 1.0)


def gp_noise(draws: int = 20) -> dict:
    """Per grid: the seed sd its repeated seeds measure, against the noise term of the `model` pick's Gaussian
    process fitted to one drawn seed per configuration (what a one-seed search would see), over `draws` draws."""

    from search import picks
    from search.options import METRIC, TIME_ATTR

    out = {}
    for grid in GRIDS:
        recorded, _ = replay.load(FOLDER / f"{grid}-bcpd.parquet", None)

        def row(config: dict, reports: list) -> dict:
            return {"config": config, "state": "complete", "metrics": {METRIC: reports[-1].value, TIME_ATTR: 20}}

        seeded = [row({**c, "seed": s}, r) for c, runs in zip(recorded.configs, recorded.curves) for s, r in runs.items()]
        rng = np.random.default_rng(0)
        terms = []
        for _ in range(draws):
            rows = [row(c, runs[sorted(runs)[rng.integers(len(runs))]]) for c, runs in zip(recorded.configs,
                                                                                           recorded.curves)]
            model, _ = picks.gaussian_process(rows, recorded.params, recorded.log_params, 0)
            terms.append(100 * noise_term(model, [r["metrics"][METRIC] for r in rows]))
        out[grid] = {"seed_sd_points": 100 * picks.seed_noise(seeded).sd, "gp_noise_points": sorted(terms)}
    return out


def table(found: dict) -> str:
    """Markdown: strategies by mean P(within 0.5 points) over the cells, with the worst cell and the compute."""
    cells = [f"{g} {n}" for g in GRIDS for n in SIZES]
    complete = {s: v for s, v in found.items() if all(c in v for c in cells)}
    ranked = sorted(complete, key=lambda s: -sum(complete[s][c]["p_within"] for c in cells))
    lines = ["| strategy | " + " | ".join(cells) + " | mean | worst | epochs spent |",
             "|---" * (len(cells) + 4) + "|"]
    for strategy in ranked:
        ps = [complete[strategy][c]["p_within"] for c in cells]
        share = sum(complete[strategy][c]["epochs_share"] for c in cells) / len(cells)
        lines.append(f"| {strategy} | " + " | ".join(f"{p:.2f}" for p in ps)
                     + f" | {sum(ps) / len(ps):.2f} | {min(ps):.2f} | {share:.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.defaults_replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=str(FOLDER / "defaults-replay.json"), help="where the numbers go")
    args = parser.parse_args(argv)
    noise = gp_noise()
    for grid, measured in noise.items():
        terms = measured["gp_noise_points"]
        print(f"{grid}: seed sd {measured['seed_sd_points']:.2f} points; the GP's noise term on one seed per "
              f"configuration, {len(terms)} draws: {terms[0]:.2f} to {terms[-1]:.2f} (median {terms[len(terms) // 2]:.2f})")
    with tempfile.TemporaryDirectory() as scratch:
        found = measure(Path(scratch))
    Path(args.json).write_text(json.dumps({"strategies": found, "gp_noise": noise}, indent=2))
    print("\n" + table(found) + f"\n\nnumbers: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
