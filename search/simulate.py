"""A search strategy run on recorded learning curves, on a simulated clock: the real objects, no training.

The sampler is the project's Optuna searcher (`tuning.StudentEpochOptuna`, Ray's `OptunaSearch` under
it) and the scheduler the one a search would build (`search.strategies`), driven through the callbacks
Ray Tune's controller calls, in its order: each report goes to the scheduler's `on_trial_result`; a
STOP, or the curve's last report, completes the trial (`on_trial_complete` of both); otherwise the
searcher sees the report. After each finished trial the search's pick rule names its answer. A sampled
configuration is answered by the nearest recorded one, with one of its recorded seeds drawn per trial, so
seed noise is replayed. Each epoch takes its recorded
seconds; `workers` trials run at once; nothing sleeps (as Syne Tune's simulated backend does).
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
class Recorded:
    """The recorded configurations of a table: their parameter values and, per seed, the reports of one run."""

    params: tuple[str, ...]
    configs: list[dict]
    curves: list[dict[int, list[Report]]]  # per configuration: seed -> reports in order
    truth: np.ndarray  # per configuration: the mean over seeds of its final value (its true value)
    log_params: frozenset[str]
    max_t: int
    scale: dict[str, tuple[float, float]] = field(default_factory=dict)  # per numeric parameter: (low, span) in its scale

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
    """The search after one trial finished: compute spent so far and the configuration it would answer."""

    student_epochs: int
    seconds: float
    pick: int | None  # index of the recorded configuration the pick rule names; None before any trial finished


def searcher_for(strategy: Strategy, space, points: list[dict], max_t: int, seed: int) -> Searcher:
    """The searcher a search builds for `strategy`, on an in-memory study."""
    sampler = SAMPLERS.get(strategy.sampler)(strategy, seed)
    return StudentEpochOptuna(space=space, metric=METRIC, mode="max", points_to_evaluate=[dict(p) for p in points],
                              sampler=sampler, max_t=max_t)


def replay(recorded: Recorded, strategy: Strategy, space, points: list[dict], trials: int, workers: int,
           seed: int) -> list[Event]:
    """One simulated search of `trials` trials, `workers` at a time; its events in the order trials finished."""
    rng = np.random.default_rng(seed)
    np.random.seed(seed % 2**32)  # ASHA draws its bracket from numpy's global generator
    searcher = searcher_for(strategy, space, points, recorded.max_t, seed)
    scheduler = SCHEDULERS.get(strategy.scheduler)(strategy, recorded.max_t)
    clock, epochs, started, order = 0.0, 0, 0, 0
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
        seeds = sorted(recorded.curves[index])
        reports = recorded.curves[index][seeds[int(rng.integers(len(seeds)))]]
        trial = Running(trial_id, index, reports)
        scheduler.on_trial_add(None, SimpleNamespace(trial_id=trial_id))
        order += 1
        heapq.heappush(queue, (clock + reports[0].seconds, order, trial))
        return True

    while True:
        while len(queue) < workers and started < trials and start():
            pass
        if not queue:
            return events
        clock, _, trial = heapq.heappop(queue)
        report = trial.reports[trial.position]
        result = {**report.result(), "trial_id": trial.trial_id}
        trial.last = result
        epochs += report.student_epoch > 0 and not report.diverged
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
            best = picks.pick(finished, recorded.params, recorded.log_params, strategy.pick, seed).best
            events.append(Event(epochs, clock, best["index"] if best else None))
            continue
        trial.position += 1
        order += 1
        heapq.heappush(queue, (clock + trial.reports[trial.position].seconds, order, trial))
