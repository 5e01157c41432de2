"""The search stage: Optuna samples configurations, ASHA stops weak students early, Tune runs the trials.

The Optuna study (in `STORAGE/optuna.db`, named after the search) holds these trials only; the
confirmation stage's runs never enter it.
"""
from __future__ import annotations

import warnings
from functools import partial

from ray.tune.search.optuna import OptunaSearch

from search.options import METRIC, MODE, TIME_ATTR
from search.spec import SearchSpec
from search.tracking import TRIAL_ROLE, described, is_number
from trainables.common import DIVERGED_KEY


class StudentEpochOptuna(OptunaSearch):
    """Ray's OptunaSearch, recording a trial's intermediate values at its student epochs only.

    Ray reports each result at its training iteration, so a lambda trial's teacher epochs (which have
    no student score yet) would enter the study, and the result on which ASHA stops a trial reaches
    the searcher only as its completion. Here step = student epoch, every epoch is present once, and
    a diverged trial's final 0 is its value, never an intermediate one."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._report_epoch(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if result:
            self._report_epoch(trial_id, result)
        super().on_trial_complete(trial_id, result=result, error=error)

    def _report_epoch(self, trial_id: str, result: dict) -> None:
        epoch, value = result.get(TIME_ATTR), result.get(self.metric)
        reported = self.__dict__.setdefault("_student_epochs", {})
        if (trial_id in self._completed_trials or trial_id not in self._ot_trials or result.get(DIVERGED_KEY)
                or not epoch or not is_number(value) or epoch <= reported.get(trial_id, 0)):
            return
        self._ot_trials[trial_id].report(value, int(epoch))
        reported[trial_id] = int(epoch)


def optuna_storage_url(spec: SearchSpec) -> str:
    return f"sqlite:///{spec.storage / 'optuna.db'}"


def optuna_search(spec: SearchSpec) -> StudentEpochOptuna:
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = optuna.storages.RDBStorage(optuna_storage_url(spec), engine_kwargs={"connect_args": {"timeout": 30}})
    sampler = optuna.samplers.TPESampler(seed=spec.seed, constant_liar=True, multivariate=True, group=True)
    return StudentEpochOptuna(space=spec.space, metric=METRIC, mode=MODE, points_to_evaluate=spec.points,
                              sampler=sampler, storage=storage, study_name=spec.name)


def close_orphaned_trials(spec: SearchSpec) -> int:
    """Mark FAIL the study's trials still RUNNING after the search ended: asked for just before a driver
    was killed, they never reached a Tune trial, and the resumed search asked for fresh ones instead."""
    import optuna

    study = optuna.load_study(study_name=spec.name, storage=optuna_storage_url(spec))
    orphans = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in orphans:
        running = optuna.trial.Trial(study, trial._trial_id)
        running.set_user_attr("kdtune", "never ran: its driver was interrupted")
        study.tell(running, state=optuna.trial.TrialState.FAIL)
    return len(orphans)


def tuner_for(spec: SearchSpec, trainable, make_run_config):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    if spec.resume and tune.Tuner.can_restore(str(spec.experiment_dir)):
        print(f"resuming {spec.experiment_dir}", flush=True)
        return tune.Tuner.restore(str(spec.experiment_dir), trainable=trainable, resume_errored=True)
    budget = spec.budget
    scheduler = ASHAScheduler(time_attr=TIME_ATTR, metric=METRIC, mode=MODE, max_t=budget.max_t,
                              grace_period=budget.grace_period, reduction_factor=budget.reduction_factor)
    tune_config = tune.TuneConfig(search_alg=optuna_search(spec), scheduler=scheduler,
                                  num_samples=budget.num_samples, max_concurrent_trials=budget.max_concurrent_trials)
    return tune.Tuner(trainable, tune_config=tune_config,
                      run_config=make_run_config(spec.name, partial(described, TRIAL_ROLE, "trial"), spec.storage))


def run_trials(spec: SearchSpec, trainable, make_run_config):
    """The search's ResultGrid, or None when the driver was interrupted before every trial ended."""
    grid = tuner_for(spec, trainable, make_run_config).fit()
    if grid.num_terminated + grid.num_errors < spec.budget.num_samples:
        return None
    close_orphaned_trials(spec)
    return grid
