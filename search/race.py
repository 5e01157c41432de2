"""The confirmation as a race: paired seeds added in rounds until every configuration is decided against the best.

Round 1 runs every configuration on seeds 1..N; each later round gives one more paired seed to the configurations
still racing, until M. After each round a look compares the racing configurations (pooled noise as in
`search.ties`, paired) with intervals for every pairwise difference that hold together with probability 1−α_r
(Tukey's studentized range), and decides each one against the best mean:
- worse: its interval against the best lies below 0 (it stops);
- equivalent: it is within ±δ of the best by that interval and no more than δ below any other contender (it
  stops; the best races on while anything else is undecided);
- better: the best, once every other configuration is decided worse;
- inconclusive: none of these after M seeds.
Each look spends part of α (the first α·N/M, each later one α/M): repeated confidence intervals with a
Bonferroni spending (Jennison & Turnbull), so the looks together spend no more than α. The racing set of a later
look is chosen from the seeds of the earlier ones, which the union bound alone does not cover; that whole races
keep their 5% is what `tests/test_race.py` and `bench/tie_rule.py` check by simulation. With M = N there is one
look at α (Tukey's intervals, exact). This is F-Race's idea (race candidates on shared instances, drop what a
paired test finds worse) with its error rate paid for.

Why not MCB's constant, as the tie set of `search.ties` uses: MCB promises to keep one truly best configuration,
and may drop another that is exactly as good. A race stops configurations for good, so its "worse" must hold
even when several are equally best, which the all-pairwise intervals guarantee. The set it leaves undecided or
equivalent is never smaller than MCB's at the same level, so it keeps the tie set's promise too.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from search import outcomes, ties
from search.outcomes import is_number
from search.state import ConfirmPlan
from search.stats import BETTER, EQUIVALENT, INCONCLUSIVE, WORSE
from trainables.metrics import STUDENT_TEST_ACC

CONFIRM_METRIC = STUDENT_TEST_ACC  # what the race and the verdicts compare: the last epoch's test accuracy


@dataclass(frozen=True)
class Decision:
    """One configuration's word against the best, and the look that said it (seeds each had, the look's α)."""

    word: str
    seeds: int
    alpha: float
    judged: bool = True  # False: no result, or too unstable to compare; never given another seed


@dataclass(frozen=True)
class Look:
    """One look: what it compared (the racing configurations) and the α it spent."""

    measured: ties.Measured
    alpha: float
    seeds: int


@dataclass(frozen=True)
class Race:
    """Where a race stands: each configuration's decision (so far), the runs the next look needs, every look."""

    keys: list[str]  # every configuration in the race
    decisions: dict[str, Decision]
    wanted: list[tuple[str, int]]  # (configuration, seed) runs missing before the next look; empty once it ended
    looks: list[Look]

    @property
    def finished(self) -> bool:
        return not self.wanted

    @property
    def last_measured(self) -> Look | None:
        """The last look that measured the seed noise: the one the race's standing is read from."""
        return next((look for look in reversed(self.looks) if look.measured.noise is not None), None)

    @property
    def best(self) -> str | None:
        """The configuration with the best mean at the last look that measured noise."""
        return self.last_measured.measured.order[0] if self.last_measured else None

    def contenders(self) -> list[str]:
        """The configurations the seeds did not find worse than the best (the undecided of an unfinished race
        included), the best first; not those it could not judge."""
        best = self.best
        rest = [k for k in self.keys if k != best and self.in_contention(k)]
        return ([best] if best else []) + rest

    def in_contention(self, key: str) -> bool:
        """Not decided yet, or decided but not worse, and judged."""
        decision = self.decisions.get(key)
        return decision is None or (decision.judged and decision.word != WORSE)

    def unjudged(self) -> list[str]:
        """The configurations without a result, or too unstable to compare."""
        return [k for k in self.keys if k in self.decisions and not self.decisions[k].judged]

    def interval(self, i: str, j: str) -> tuple[tuple[float, float, float], Look] | None:
        """(mean i − mean j, low, high) at the last look that compared both, and that look."""
        for look in reversed(self.looks):
            m = look.measured
            if m.noise is not None and i in m.means and j in m.means:
                return ties.pairwise(m, i, j, look.alpha), look
        return None


def look_alpha(seeds: int, first: int, most: int, alpha: float = ties.ALPHA) -> float:
    """The α a look after `seeds` paired seeds spends: α·first/most at the first look, α/most at each later one."""
    return alpha * (first if seeds <= first else 1) / most


def run(results: Mapping[str, Mapping[int, float | None]], keys: Sequence[str], seeds: Sequence[int], first: int,
        most: int, margin: float, alpha: float = ties.ALPHA) -> Race:
    """The race over configurations `keys` from the results so far (`results[key][seed]`: the final value, None for a
    run that failed; absent: not run), on the planned `seeds` (at least `most` of them, in order)."""
    racing, decisions, looks, count = list(keys), {}, [], first
    while True:
        wanted = [(k, s) for s in seeds[:count] for k in racing if s not in results.get(k, {})]
        if wanted:
            return Race(list(keys), decisions, wanted, looks)
        level = look_alpha(count, first, most, alpha)
        measured = ties.measure({k: {s: results[k][s] for s in seeds[:count] if results[k][s] is not None}
                                 for k in racing})
        looks.append(Look(measured, level, count))
        for key in racing:
            if key not in measured.means:  # no result, or too unstable to describe by a mean
                decisions[key] = Decision(INCONCLUSIVE, count, level, judged=False)
        racing = measured.order
        if measured.noise is not None:
            racing = decide(measured, margin, count, level, decisions)
        if len(racing) < 2 or count >= most:
            break
        count += 1
    others = {d.word for d in decisions.values() if d.judged}
    if len(racing) == 1 and others and others <= {WORSE, EQUIVALENT}:  # the best, once all else is decided against it
        decisions[racing[0]] = Decision(EQUIVALENT if EQUIVALENT in others else BETTER, count, level)
    decisions.update({k: Decision(INCONCLUSIVE, count, level) for k in racing if k not in decisions})
    return Race(list(keys), decisions, [], looks)


def decide(m: ties.Measured, margin: float, count: int, level: float, decisions: dict[str, Decision]) -> list[str]:
    """Record what one look decides; return the configurations that race on (the best first, while any other does)."""
    best = m.order[0]
    for key in m.order[1:]:
        if ties.pairwise(m, key, best, level)[2] < 0:
            decisions[key] = Decision(WORSE, count, level)
    contenders = [k for k in m.order if k not in decisions]
    for key in contenders[1:]:
        difference, low, high = ties.pairwise(m, key, best, level)
        below = all(ties.pairwise(m, key, other, level)[1] >= -margin for other in contenders if other != key)
        if below and high <= margin and low >= -margin:
            decisions[key] = Decision(EQUIVALENT, count, level)
    return [k for k in contenders if k not in decisions]


def seeds_needed(race: Race, margin: float) -> int | None:
    """About how many paired seeds in all would decide ±margin between the configurations the last look compared,
    at its noise (the sd of a paired difference: √2 · the residual sd), level and number of configurations."""
    last = race.last_measured
    if last is None:
        return None
    return ties.seeds_to_decide(math.sqrt(2) * last.measured.noise.sd, margin, last.alpha, len(last.measured.order))


def seeds_for(base_seed: int, count: int) -> list[int]:
    """Seeds base+1 .. base+count: never the search's own seed, whose lucky draws chose the winners."""
    return [base_seed + i for i in range(1, count + 1)]


def planned_seeds(plan: ConfirmPlan) -> list[int]:
    """Every seed the race may use, in order: those run so far, then the next ones up to `plan.most`."""
    base = plan.seeds[0] - 1 if plan.seeds else 0
    return seeds_for(base, max(plan.most, len(plan.seeds)))


def race_of(plan: ConfirmPlan, margin: float) -> Race:
    """The race so far, from the recorded runs: a run without a usable value, or one a finished batch did not
    record, counts as failed."""
    done = {(k, s) for batch in plan.batches if batch.done for k, s in batch.runs}
    done |= {(c["key"], s) for c in plan.candidates for s in plan.seeds if plan.result(c["key"], s) is not None}
    results: dict[str, dict[int, float | None]] = {c["key"]: {} for c in plan.candidates}
    for key, seed in done:
        record = plan.result(key, seed) or {}
        value = record.get("metrics", {}).get(CONFIRM_METRIC)
        results.setdefault(key, {})[seed] = value if record.get("state") == outcomes.COMPLETE and is_number(value) \
            else None
    first = plan.first or len(plan.seeds)  # a plan from before the race: all its seeds were its first round
    return run(results, [c["key"] for c in plan.candidates], planned_seeds(plan), first, max(plan.most, first), margin)
