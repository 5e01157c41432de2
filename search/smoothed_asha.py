"""Ray's ASHA comparing the mean of a trial's last few validation epochs instead of one epoch.

On small data one epoch's validation accuracy can jump by 0.3 between neighbouring epochs, so a rung
that compares single epochs stops trials on noise. This subclass changes only the value each rung
sees; the rungs, cutoffs and decisions are ASHA's own. It keeps each trial's values by epoch, so a
result seen twice (the final one, or one repeated after a restore) is counted once.
"""
from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler

from search.outcomes import is_number


class SmoothedASHA(ASHAScheduler):
    def __init__(self, *, window: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.window = window
        self.history: dict[str, dict[int, float]] = {}

    def smoothed(self, trial_id: str, result: dict) -> dict:
        """`result` with the metric replaced by the mean over the trial's last `window` epochs up to this one."""
        epoch, value = result.get(self._time_attr), result.get(self._metric)
        if not epoch or not is_number(value):
            return result
        seen = self.history.setdefault(trial_id, {})
        seen[int(epoch)] = float(value)
        recent = [seen[e] for e in sorted(seen) if e <= epoch][-self.window:]
        return {**result, self._metric: sum(recent) / len(recent)}

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return super().on_trial_result(tune_controller, trial, self.smoothed(trial.trial_id, result))

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        super().on_trial_complete(tune_controller, trial, self.smoothed(trial.trial_id, result))
        self.history.pop(trial.trial_id, None)
