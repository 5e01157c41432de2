"""A search strategy run on recorded learning curves, on a simulated clock: the real objects, no training.

The sampler is the project's Optuna searcher (`tuning.StudentEpochOptuna`, Ray's `OptunaSearch` under
it) and the scheduler the one a search would build (`search.strategies`), driven through the callbacks
Ray Tune's controller calls, in its order: each report goes to the scheduler's `on_trial_result`; a
STOP, or the curve's last report, completes the trial (`on_trial_complete` of both); otherwise the
searcher sees the report. After each finished trial the search's pick rule names its answer. A sampled
configuration is answered by the nearest recorded one. A live search runs every trial with one seed, so a
simulated search does too (`search_seed`); drawing a recorded seed per trial is the older, kinder variant.
Each epoch takes its recorded seconds; `workers` trials run at once; nothing sleeps (as Syne Tune's simulated
backend does). Compute is every epoch a trial trains, a teacher stage's included: a `Budget` of it ends the
search the moment it is spent (a trial still running is cut and does not count, as a time budget cuts it), and
until then trials keep starting, so epochs that early stopping saves buy more trials.

Ray's ASHA promotes the first trial to reach a rung without comparison (nothing recorded there yet), so with few
trials the arrival order decides part of what is stopped; the replay inherits that, as a live search does.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from search import outcomes, picks
from search.options import METRIC, TIME_ATTR
from search.strategies import SAMPLERS, SCHEDULERS, Strategy
from search.tuning import StudentEpochOptuna
from trainables.common import DIVERGED_KEY


@dataclass(frozen=True)
class Report:
    """One recorded report of a trial: its student epoch (0 in a teacher stage), value and seconds."""

    student_epoch: int
    value: float
    seconds: float
    diverged: bool = False

    def result(self) -> dict:
        result = {TIME_ATTR: self.student_epoch, METRIC: self.value}
        return {**result, DIVERGED_KEY: 1} if self.diverged else result


@dataclass(frozen=True)
class Budget:
    """The compute a simulated search may spend: epochs trained (student and teacher), or their seconds summed over
    the workers (the trial-seconds a cluster bills)."""

    amount: float
    unit: str = "epochs"  # or "seconds"

    def cost(self, report: Report) -> float:
        """A report's seconds, or one epoch (a divergence report ends a trial; it trains no epoch)."""
        return report.seconds if self.unit == "seconds" else float(not report.diverged)


@dataclass(frozen=True)
class Recorded:
    """The recorded configurations of a table: their parameter values and, per seed, the reports of one run."""

    params: tuple[str, ...]
    configs: list[dict]
    curves: list[dict[int, list[Report]]]  # per configuration: seed -> reports in order
    truth: np.ndarray  # per configuration: the mean over seeds of its final value (its true value)
    log_params: frozenset[str]
    max_t: int
    scale: dict[str, tuple[float, float]] = field(default_factory=dict)  # per numeric parameter: (low, span) in its scale

    def seeds(self) -> list[int]:
        """The seeds every configuration was recorded with: the seeds a one-seed search can run on."""
        return sorted(set.intersection(*(set(runs) for runs in self.curves)))

    def full_trial_cost(self, unit: str) -> float:
        """The median compute of one trial run to the end (teacher and student epochs, or their seconds)."""
        costs = [sum(report.seconds if unit == "seconds" else 1.0 for report in reports if not report.diverged)
                 for runs in self.curves for reports in runs.values() if reports[-1].student_epoch >= self.max_t]
        return float(np.median(costs)) if costs else float(self.max_t)

    def position(self, name: str, value: object) -> float:
        """A numeric value on its parameter's scale (log where the search samples on one), as a fraction of the
        recorded span; values at or below 0 on a log scale sit a decade below the smallest positive one."""
        low, span = self.scale[name]
        return (self.transform(name, float(value)) - low) / span

    def transform(self, name: str, value: float) -> float:
        if name not in self.log_params:
            return value
        smallest = min(float(c[name]) for c in self.configs if float(c[name]) > 0)
        return math.log10(value if value > 0 else smallest / 10)

    def nearest(self, config: dict) -> int:
        """The recorded configuration closest to `config`: summed distances on each numeric parameter's own scale,
        1 for each categorical that differs."""
        best, best_distance = 0, math.inf
        for index, recorded in enumerate(self.configs):
            distance = 0.0
            for name in self.params:
                if name in self.scale:
                    distance += abs(self.position(name, config[name]) - self.position(name, recorded[name]))
                else:
                    distance += float(str(config[name]) != str(recorded[name]))
            if distance < best_distance:
                best, best_distance = index, distance
        return best


@dataclass
class Running:
    trial_id: str
    config_index: int
    reports: list[Report]
    position: int = 0
    last: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """The search after one trial finished: compute spent so far (epochs of every trial, teacher stages included;
    the same in seconds, summed over workers), the simulated wall clock, and the configuration it would answer."""

    epochs: int
    seconds: float
    pick: int | None  # index of the recorded configuration the pick rule names; None before any trial finished
    compute_seconds: float = 0.0
    ranked: tuple[int, ...] = field(default=(), compare=False)  # the configurations in the answer's order, distinct

    def spent(self, unit: str) -> float:
        return self.compute_seconds if unit == "seconds" else self.epochs


def searcher_for(strategy: Strategy, space, points: list[dict], max_t: int, seed: int) -> Searcher:
    """The searcher a search builds for `strategy`, on an in-memory study."""
    sampler = SAMPLERS.get(strategy.sampler)(strategy, seed)
    return StudentEpochOptuna(space=space, metric=METRIC, mode="max", points_to_evaluate=[dict(p) for p in points],
                              sampler=sampler, max_t=max_t)


def replay(recorded: Recorded, strategy: Strategy, space, points: list[dict], trials: int | None, workers: int,
           seed: int, search_seed: int | None = None, budget: Budget | None = None) -> list[Event]:
    """One simulated search, `workers` trials at a time, of `trials` trials or until `budget` is spent (whichever
    comes first; at least one is given); its events in the order trials finished. Every trial runs the recorded
    curve of `search_seed` where given (as a live search does), else of a seed drawn per trial."""
    if trials is None and budget is None:
        raise ValueError("a simulated search needs a trial count or a budget")
    rng = np.random.default_rng(seed)
    np.random.seed(seed % 2**32)  # ASHA draws its bracket from numpy's global generator
    searcher = searcher_for(strategy, space, points, recorded.max_t, seed)
    scheduler = SCHEDULERS.get(strategy.scheduler)(strategy, recorded.max_t)
    clock, epochs, compute, started, order = 0.0, 0, 0.0, 0, 0
    limit = math.inf if trials is None else trials
    queue: list[tuple[float, int, Running]] = []
    finished: list[dict] = []
    events: list[Event] = []

    def start() -> bool:
        nonlocal started, order
        trial_id = f"replay{started:05d}"
        config = searcher.suggest(trial_id)
        if config is None or config == Searcher.FINISHED:
            return False
        started += 1
        index = recorded.nearest(config)
        runs = recorded.curves[index]
        seeds = sorted(runs)
        if search_seed is not None and search_seed not in runs:
            raise ValueError(f"configuration {recorded.configs[index]} has no run of seed {search_seed}")
        reports = runs[search_seed] if search_seed is not None else runs[seeds[int(rng.integers(len(seeds)))]]
        trial = Running(trial_id, index, reports)
        scheduler.on_trial_add(None, SimpleNamespace(trial_id=trial_id))
        order += 1
        heapq.heappush(queue, (clock + reports[0].seconds, order, trial))
        return True

    def spent() -> float:
        return 0.0 if budget is None else (compute if budget.unit == "seconds" else epochs)

    while True:
        while len(queue) < workers and started < limit and (budget is None or spent() < budget.amount) and start():
            pass
        if not queue:
            return events
        clock, _, trial = heapq.heappop(queue)
        report = trial.reports[trial.position]
        if budget is not None and spent() + budget.cost(report) > budget.amount:
            return events  # the budget ran out during this epoch: the search ends, running trials are cut
        result = {**report.result(), "trial_id": trial.trial_id}
        trial.last = result
        epochs += not report.diverged
        compute += report.seconds
        stub = SimpleNamespace(trial_id=trial.trial_id)
        decision = scheduler.on_trial_result(None, stub, result)
        last = trial.position == len(trial.reports) - 1
        if decision != TrialScheduler.STOP:
            searcher.on_trial_result(trial.trial_id, result)
        if decision == TrialScheduler.STOP or last:
            searcher.on_trial_complete(trial.trial_id, result=result)
            scheduler.on_trial_complete(None, stub, result)
            finished.append({"state": outcomes.trial_state(result, None, recorded.max_t), "metrics": result,
                             "config": recorded.configs[trial.config_index], "index": trial.config_index})
            answer = picks.pick(finished, recorded.params, recorded.log_params, strategy.pick, seed)
            ranked = tuple(dict.fromkeys(row["index"] for row in answer.ranked))
            events.append(Event(epochs, clock, ranked[0] if ranked else None, compute, ranked))
            continue
        trial.position += 1
        order += 1
        heapq.heappush(queue, (clock + trial.reports[trial.position].seconds, order, trial))
