"""One progress line per stage of a search, kept by a Tune callback from the trials Tune holds.

The MLL teacher (its epochs and validation accuracy), the search (trials ended, running and planned, the student and
teacher epochs spent of the plan, how many ASHA stopped, the best finished trial, elapsed and at most how long is left)
and each confirmation round (runs ended of planned, per configuration). Everything is read from the trials' last
results, so a resumed experiment, whose callbacks Tune restores from its own pickle, counts its earlier trials too.
"""
from __future__ import annotations

import time
from abc import abstractmethod
from collections import Counter
from collections.abc import Sequence

from ray import tune

from distill.cli import clock

from search import console
from search.options import METRIC, TIME_ATTR
from search.outcomes import epochs_trained, is_number
from search.tracking import config_label
from trainables.common import DIVERGED_KEY
from trainables.metrics import STUDENT_TEST_ACC, TEACHER_EPOCH, TEACHER_VAL_ACC
from trainables.overrides import CONFIRM_KEY, SEED_KEY, trains_teacher

REDRAW_S = 1.0  # a terminal's progress line is redrawn at most this often between events
ENDED = ("TERMINATED", "ERROR")


def percent(value: object) -> str:
    return f"{100 * value:.2f}%" if is_number(value) else "-"


class StageProgress(tune.Callback):
    """The line of one Tune experiment: `line(trials)` says where it stands; a trial's end is an event.

    How each trial ended is what this driver heard (`on_trial_complete`, `on_trial_error`, which Tune calls before it
    sets the trial's status) or found ended when it started, never the status Tune gives the trials an interrupt
    stops; and a trial's result is the one just reported (Tune calls `on_trial_result` before it records it)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._started: float | None = None
        self._spent_at_start, self._drawn = 0, 0.0
        self._ended: dict[str, str] | None = None  # trial id -> TERMINATED or ERROR
        self._latest: dict[str, dict] = {}

    def __getstate__(self) -> dict:  # pickled into the experiment's tuner.pkl: this driver's record stays out
        kept = dict(self.__dict__)
        for name in ("_started", "_spent_at_start", "_drawn", "_ended", "_latest"):
            kept.pop(name, None)
        return kept

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def ended_as(self, trial) -> str | None:
        """TERMINATED or ERROR for a trial that ended, else None."""
        return (self._ended or {}).get(trial.trial_id)

    def result(self, trial) -> dict:
        return self._latest.get(trial.trial_id, trial.last_result)

    def running(self, trials: Sequence) -> int:
        return sum(t.status == "RUNNING" and self.ended_as(t) is None for t in trials)

    def line(self, trials: Sequence) -> str:
        """Where the experiment stands."""
        self._meet(trials)
        return self.describe(trials)

    @abstractmethod
    def describe(self, trials: Sequence) -> str:
        """The stage's line (`line` keeps the record of ended trials current first)."""

    @abstractmethod
    def spent(self, trials: Sequence) -> tuple[int, int]:
        """(epochs trained, epochs planned) over the whole experiment."""

    def planned_trials(self) -> int:
        return 1

    def timing(self, trials: Sequence, spent: int, planned: int, upper_bound: bool = False) -> str:
        """Elapsed in this driver, and what is left at this driver's own rate of epochs (`spent` of `planned`; none
        before one ended, and none once every trial has)."""
        now = time.monotonic()
        if self._started is None:
            self._started, self._spent_at_start = now, spent
        elapsed = now - self._started
        text = clock(elapsed)
        done_here = spent - self._spent_at_start
        over = sum(self.ended_as(t) is not None for t in trials) >= self.planned_trials()
        if done_here > 0 and planned > spent and not over:
            left = (planned - spent) * elapsed / done_here
            text += f", {'at most ' if upper_bound else ''}~{clock(left)} left"
        return text

    def _meet(self, trials: Sequence) -> dict[str, str]:
        """How the trials ended, starting with those that had ended before this driver (a resumed experiment's)."""
        if self._ended is None:
            self._ended = {t.trial_id: t.status for t in trials if t.status in ENDED}
        return self._ended

    def show(self, trials: Sequence, event: str | None = None) -> None:
        self._drawn = time.monotonic()
        line = self.line(trials)
        console.current().status(f"{line} ({event})" if event else line, event=event is not None)

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        if time.monotonic() - self._drawn >= REDRAW_S:
            self.show(trials)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        self._latest[trial.trial_id] = result
        self.show(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._meet(trials)[trial.trial_id] = "TERMINATED"
        self.show(trials, self.ended(trial))

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._meet(trials)[trial.trial_id] = "ERROR"
        self.show(trials, f"trial {trial.trial_id} failed; its traceback is in {console.LOG_FILE}")

    def on_experiment_end(self, trials: list, **info) -> None:
        console.current().end_status(self.line(trials))
        self._reset()

    def ended(self, trial) -> str:
        return f"trial {trial.trial_id} ended"


class TeacherProgress(StageProgress):
    """`MLL teacher resnet14: epoch 12/30 · val acc 81.20% · 0:40, ~1:20 left`."""

    def __init__(self, title: str, epochs: int) -> None:
        super().__init__()
        self.title, self.epochs = title, epochs

    def spent(self, trials: Sequence) -> tuple[int, int]:
        return sum(int(self.result(t).get(TEACHER_EPOCH) or 0) for t in trials), self.epochs

    def describe(self, trials: Sequence) -> str:
        result = self.result(trials[0]) if trials else {}
        epoch = int(result.get(TEACHER_EPOCH) or 0)
        return (f"{self.title}: epoch {epoch}/{self.epochs} · val acc {percent(result.get(TEACHER_VAL_ACC))} · "
                f"{self.timing(trials, *self.spent(trials))}")

    def ended(self, trial) -> str:
        return "trained"


class SearchProgress(StageProgress):
    """`search: 5/16 trials ended, 2 running, 3 stopped early · 61/128 epochs · 1:42, at most ~2:10 left · best λ=0.25
    91.20%`: the best among the trials that ran every epoch; what is left assumes no more stop early. What matters
    most comes first, as a narrow terminal cuts the line's end."""

    def __init__(self, num_samples: int, max_t: int, stage_epochs: int, label_names: dict[str, str]) -> None:
        super().__init__()
        self.num_samples, self.max_t, self.stage_epochs, self.label_names = (num_samples, max_t, stage_epochs,
                                                                           dict(label_names))

    def planned_trials(self) -> int:
        return self.num_samples

    def spent(self, trials: Sequence) -> tuple[int, int]:
        return (sum(epochs_trained(self.result(t), self.stage_epochs) for t in trials),
                self.num_samples * (self.max_t + self.stage_epochs))

    def describe(self, trials: Sequence) -> str:
        ended = [t for t in trials if self.ended_as(t)]
        completed = [t for t in ended if self.ended_as(t) == "TERMINATED" and not self.result(t).get(DIVERGED_KEY)]
        stopped = sum(0 < int(self.result(t).get(TIME_ATTR) or 0) < self.max_t for t in completed)
        failed = len(ended) - len(completed)
        finished = [t for t in completed if self.ran_all(t)]
        spent, planned = self.spent(trials)
        parts = [f"search: {len(ended)}/{self.num_samples} trials ended, {self.running(trials)} running"
                 + (f", {stopped} stopped early" if stopped else "") + (f", {failed} failed or diverged" if failed
                                                                        else ""),
                 f"{spent}/{planned} epochs", self.timing(trials, spent, planned, upper_bound=True)]
        if finished:
            best = max(finished, key=lambda t: self.result(t)[METRIC])
            parts.append(f"best {self.label(best.config)} {percent(self.result(best)[METRIC])}")
        return " · ".join(parts)

    def ran_all(self, trial) -> bool:
        result = self.result(trial)
        return is_number(result.get(METRIC)) and int(result.get(TIME_ATTR) or 0) >= self.max_t

    def label(self, config: dict) -> str:
        return config_label(config, self.label_names)

    def ended(self, trial) -> str:
        result, what = self.result(trial), f"trial {trial.trial_id}"
        if result.get(DIVERGED_KEY):
            return f"{what} diverged"
        epoch = int(result.get(TIME_ATTR) or 0)
        if epoch < self.max_t:
            return f"{what} stopped early at student epoch {epoch}: {percent(result.get(METRIC))}"
        return f"{what}, {self.label(trial.config)}: {percent(result.get(METRIC))}"


class ConfirmProgress(StageProgress):
    """`confirmation confirm-1: 4/6 runs ended · 21/30 epochs · 1:02, ~0:30 left · λ=0 control 2/2 · λ=0.25 1/2`;
    per configuration, the runs ended of those planned so far, earlier rounds included."""

    def __init__(self, name: str, labels: dict[str, str], earlier: dict[str, int], runs: Sequence[tuple[str, int]],
                 student_epochs: int, stage_epochs: int, configs: dict[str, dict]) -> None:
        super().__init__()
        self.name, self.labels, self.earlier = name, dict(labels), dict(earlier)
        self.runs, self.student_epochs = list(runs), student_epochs
        self.stage_of = {key: stage_epochs if trains_teacher(config) else 0 for key, config in configs.items()}

    def planned_trials(self) -> int:
        return len(self.runs)

    def spent(self, trials: Sequence) -> tuple[int, int]:
        spent = sum(epochs_trained(self.result(t), self.stage_of.get(t.config.get(CONFIRM_KEY), 0)) for t in trials)
        return spent, sum(self.student_epochs + self.stage_of.get(key, 0) for key, _ in self.runs)

    def describe(self, trials: Sequence) -> str:
        ended = [t for t in trials if self.ended_as(t)]
        planned = Counter(key for key, _ in self.runs)
        done = {key: self.earlier.get(key, 0) + sum(t.config.get(CONFIRM_KEY) == key for t in ended)
                for key in planned}
        spent, total = self.spent(trials)
        per_config = " · ".join(f"{self.labels.get(key, key)} {done[key]}/{self.earlier.get(key, 0) + n}"
                                for key, n in planned.items())
        return (f"confirmation {self.name}: {len(ended)}/{len(self.runs)} runs ended · {spent}/{total} epochs · "
                f"{self.timing(trials, spent, total)} · {per_config}")

    def ended(self, trial) -> str:
        config = trial.config
        return (f"{self.labels.get(config.get(CONFIRM_KEY), '')} seed {config.get(SEED_KEY)}: test "
                f"{percent(self.result(trial).get(STUDENT_TEST_ACC))}")
