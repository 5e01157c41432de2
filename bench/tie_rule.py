"""Do the answer's error rates hold? Simulations against a known truth of the tie rule and of the confirmation's race.

The tie rule (`search.ties`, through `search.picks.pick`, as a search applies it): k configurations × n seeds, normal
seed noise (sd 1) plus, where the seeds are paired, a seed effect shared by every configuration (sd 1). With all
configurations equal, how often the set keeps configuration 0 (a truly best one; the rule promises ≥ 95%); with
configuration 1 worse by 3 seed sds, how often it is dropped (power). The old rule (1.96 · the pooled sd of the
difference, unpaired) beside it.

The race (`search.race`, as the confirmation runs it): k configurations on paired seeds (a shared seed effect of sd
1 plus each run's own noise), N first seeds, up to M; how often a race says "better" or "worse" wrongly (promised
≤ 5% of races), how often it says "equivalent" of a difference of δ or more (promised ≤ 5%), how often it decides
every configuration, and the runs it spends against fixed N and fixed M.

    python -m bench.tie_rule --repeats 4000 --json bench/tie_rule.json    # about 2 minutes on 2 cores
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from distill.cli import ArgumentParser, run_cli
from search import picks, race
from search.options import METRIC
from search.stats import BETTER, EQUIVALENT, WORSE

OLD_TIE_Z = 1.96  # the rule before issue 34: within 1.96 pooled sd of the difference, unpaired


def simulated_rows(values: np.ndarray, paired: bool) -> list[dict]:
    """Finished search trials for values[configuration, seed]: with the seed in the configuration when `paired`
    (a grid with --grid-seeds), else one trial per value and nothing shared."""
    return [{"trial": f"{i}-{s}", "state": "complete", "outcome": "complete",
             "config": {"x": i, **({"seed": s} if paired else {})}, "metrics": {METRIC: float(values[i, s])}}
            for i in range(values.shape[0]) for s in range(values.shape[1])]


def draw(rng: np.random.Generator, means: np.ndarray, seeds: int, paired: bool, sd: float = 1.0) -> np.ndarray:
    """values[configuration, seed]: means + seed noise (+ a shared seed effect of sd 1 where paired)."""
    values = means[:, None] + rng.normal(0.0, sd, (len(means), seeds))
    return values + rng.normal(0.0, 1.0, (1, seeds)) if paired else values


def old_rule_keeps(values: np.ndarray, index: int) -> bool:
    """The rule before: configuration `index` within 1.96 pooled sd of the difference from the best mean."""
    means, n = values.mean(axis=1), values.shape[1]
    sd = math.sqrt(values.var(axis=1, ddof=1).mean())
    return means.max() - means[index] <= OLD_TIE_Z * sd * math.sqrt(2 / n)


def tie_rates(configurations: int, seeds: int, repeats: int, paired: bool, gap: float = 0.0,
              seed: int = 0) -> dict[str, float]:
    """Over `repeats` simulated searches: how often the set keeps configuration 0 (truly best) and drops
    configuration 1 (worse by `gap` seed sds), by the search's rule and by the old one."""
    rng = np.random.default_rng(seed)
    means = np.zeros(configurations)
    means[1] -= gap
    kept = dropped = old_kept = old_dropped = 0
    for _ in range(repeats):
        values = draw(rng, means, seeds, paired)
        tied = {row["config"]["x"] for row in picks.pick(simulated_rows(values, paired), ["x"]).tied}
        kept += 0 in tied
        dropped += 1 not in tied
        old_kept += old_rule_keeps(values, 0)
        old_dropped += not old_rule_keeps(values, 1)
    return {"keeps_best": kept / repeats, "drops_worse": dropped / repeats, "old_keeps_best": old_kept / repeats,
            "old_drops_worse": old_dropped / repeats, "repeats": repeats}


def one_race(values: np.ndarray, first: int, most: int, margin: float) -> race.Race:
    """A race run to its end on values[configuration, seed] (seed s drawn once, used when the race asks for it)."""
    keys = [str(i) for i in range(values.shape[0])]
    seeds = list(range(1, most + 1))
    results: dict[str, dict[int, float]] = {k: {} for k in keys}
    while True:
        contest = race.run(results, keys, seeds, first, most, margin)
        if contest.finished:
            return contest
        for key, s in contest.wanted:
            results[key][s] = float(values[int(key), s - 1])


def wrong(contest: race.Race, means: np.ndarray, margin: float) -> tuple[bool, bool]:
    """(a false better/worse, a false equivalence) among the race's decisions, against the true means."""
    best = means.max()
    false_order = false_equivalent = False
    for key, decision in contest.decisions.items():
        mean = means[int(key)]
        if decision.word == WORSE and mean >= best:
            false_order = True
        if decision.word == BETTER and any(m >= mean for i, m in enumerate(means) if i != int(key)):
            false_order = True
        if decision.word == EQUIVALENT and abs(mean - best) >= margin - 1e-12 and mean != best:
            false_equivalent = True
    return false_order, false_equivalent


def race_rates(means: Sequence[float], first: int, most: int, margin: float, repeats: int, sd: float = 1.0,
               seed: int = 0) -> dict[str, float]:
    """Over `repeats` races on paired seeds: false better/worse, false equivalence (a configuration exactly δ or
    more from the best called equivalent), any equivalence, every configuration decided, and runs spent."""
    rng = np.random.default_rng(seed)
    means = np.asarray(means, dtype=float)
    counts = {"false_order": 0, "false_equivalent": 0, "equivalent": 0, "decided": 0, "runs": 0}
    for _ in range(repeats):
        values = draw(rng, means, most, paired=True, sd=sd)
        contest = one_race(values, first, most, margin)
        order, equivalent = wrong(contest, means, margin)
        words = [d.word for d in contest.decisions.values()]
        counts["false_order"] += order
        counts["false_equivalent"] += equivalent
        counts["equivalent"] += EQUIVALENT in words
        counts["decided"] += all(w in (BETTER, WORSE, EQUIVALENT) for w in words)
        counts["runs"] += sum(d.seeds for d in contest.decisions.values())  # each ran the seeds of its last look
    return {**{k: v / repeats for k, v in counts.items()}, "repeats": repeats}


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bench.tie_rule", description=__doc__)
    parser.add_argument("--repeats", type=int, default=4000, help="simulated searches or races per row (default: "
                        "4000)")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    out: dict[str, list] = {"ties": [], "races": []}
    print("| k × n | seeds | keeps the true best (MC se) | old rule | drops one 3 sd worse | old rule |\n"
          "|---|---|---:|---:|---:|---:|")
    for k, n in ((4, 3), (8, 4), (16, 2)):
        for paired in (False, True):
            equal = tie_rates(k, n, args.repeats, paired)
            worse = tie_rates(k, n, args.repeats, paired, gap=3.0, seed=1)
            se = math.sqrt(0.05 * 0.95 / args.repeats)
            out["ties"].append({"k": k, "n": n, "paired": paired, "equal": equal, "gap_3sd": worse})
            print(f"| {k} × {n} | {'paired' if paired else 'unpaired'} | {equal['keeps_best']:.3f} (±{se:.3f}) | "
                  f"{equal['old_keeps_best']:.3f} | {worse['drops_worse']:.3f} | {worse['old_drops_worse']:.3f} |",
                  flush=True)
    print("\n| configurations (true means, in points) | seed sd | δ | N → M | false better/worse | false equivalent | "
          "all decided | runs (mean) |\n|---|---|---|---|---:|---:|---:|---:|")
    settings = [("5 equal", [0.0] * 5, 1.0, 1.0), ("5 equal", [0.0] * 5, 0.3, 1.0),
                ("0, 0, −1, −2, −4", [0, 0, -1, -2, -4], 1.0, 1.0),
                ("0, 0, −0.5, −1, −2", [0, 0, -0.5, -1, -2], 0.3, 1.0),
                ("2, apart by δ", [0.0, -1.0], 0.5, 1.0)]
    for label, means, sd, margin in settings:
        for first, most in ((3, 3), (3, 8), (8, 8)):
            rates = race_rates(means, first, most, margin, args.repeats // 4, sd=sd)
            out["races"].append({"means": means, "sd": sd, "margin": margin, "first": first, "most": most, **rates})
            print(f"| {label} | {sd:g} | {margin:g} | {first} → {most} | {rates['false_order']:.3f} | "
                  f"{rates['false_equivalent']:.3f} | {rates['decided']:.3f} | {rates['runs']:.1f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
