"""The search stage: Optuna samples configurations, ASHA stops weak students early, Tune runs the trials.

The Optuna study (in `STORAGE/optuna.db`, named after the search) holds these trials only; the
confirmation stage's runs never enter it.
"""
from __future__ import annotations

import contextlib
import logging
import sqlite3
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import optuna
from ray.tune.search.optuna import OptunaSearch

from distill.errors import UserError
from search import ownership, trust
from search.options import METRIC, MODE, TIME_ATTR
from search.outcomes import is_number
from search.progress import SearchProgress
from search.spec import SearchSpec
from search.strategies import SAMPLERS, SCHEDULERS, distributions
from search.tracking import check_sqlite_store, sqlite_uri, trial_description
from trainables.common import DIVERGED_KEY

# A finished trial's worker process runs the next trial of the same experiment: no new process, no second
# import of torch (about 4 s of a 29 s four-trial digits search on 2 cores). Every run seeds itself.
REUSE_WORKERS = True


def reuse_workers(spec: SearchSpec) -> bool:
    """Reuse trial processes, except for multi-worker trials: a stopped driver's process must end, so that the
    Train run it owns (controller, workers, their placement group) ends with it."""
    return REUSE_WORKERS and spec.resources["workers"] == 1


def trial_ids(grid) -> set[str]:
    """The Ray trial ids a finished Tune experiment ran (what its MLflow runs are keyed by)."""
    return {result.metrics.get("trial_id") for result in grid}


class Interrupted(Exception):
    """Ctrl-C stopped a Tune experiment; it is resumable from where it stopped."""


class InterruptWatch(logging.Filter):
    """Notes Ray Tune's "Experiment has been interrupted ... Tuner.restore(...)" warning and drops it: Tune
    returns an interrupted experiment's results like a finished one's, and the search prints its own command."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "has been interrupted" in record.getMessage():
            self.seen = True
            return False
        return True


def fit(tuner, folder: Path):
    """`tuner.fit()`'s ResultGrid, with the experiment `folder`'s state signed however the fit ended
    (`search.trust`); `Interrupted` when Ctrl-C (or SIGTERM) stopped it."""
    watch, logger = InterruptWatch(), logging.getLogger("ray.tune.tune")
    logger.addFilter(watch)
    try:
        grid = tuner.fit()
    finally:
        logger.removeFilter(watch)
        if trust.is_experiment(folder):
            trust.sign(folder)
    if watch.seen:
        raise Interrupted(str(getattr(grid, "experiment_path", "")))
    return grid


RAY_TRIAL_ATTR, MLFLOW_RUN_ATTR, ASHA_ATTR = "ray_trial_id", "mlflow_run_id", "asha"  # Optuna user attributes
MLFLOW_URL_ATTR, OUTCOME_ATTR = "mlflow_run_url", "outcome"  # the run's page; what became of it, as in MLflow


@dataclass(frozen=True)
class StudyLinks:
    """What ties each Optuna trial to the rest, all picklable: its MLflow run, that run's page in the UI, and the
    words the MLflow run's outcome tag uses (so a collapsed teacher is the reason in both UIs)."""

    run_of: Callable[[str], str | None]  # Ray trial id -> MLflow run id (None until the run exists)
    run_url: Callable[[str], str]  # MLflow run id -> its page
    outcome: Callable[[dict, object], str]  # (last result, error) -> the outcome


class StudentEpochOptuna(OptunaSearch):
    """Ray's OptunaSearch, recording each trial as a student: its epochs, its fate and where its run lives.

    - Intermediate values at student epochs only, step = epoch, every epoch once: a lambda trial's teacher
      epochs carry no student score, and the result on which ASHA stops a trial reaches the searcher only
      as the trial's completion. A diverged trial's final 0 is its value, never an intermediate one.
    - A trial ASHA stopped before `max_t` is PRUNED, not COMPLETE: TPE then ranks it below every trial
      that ran all epochs, the deeper rung first (ASHA's own judgement), instead of comparing an early
      epoch's accuracy with final ones. Its `asha` attribute says where it stopped, and it has no value
      (`prune`), so no plot of values puts its early epoch beside the final ones.
    - `ray_trial_id`, `mlflow_run_id` and `mlflow_run_url` user attributes link each trial to Tune and MLflow
      (set while the trial runs, since Optuna freezes finished trials), and `outcome` says what became of it in
      MLflow's words: "teacher collapsed" where MLflow says so. The study's own attributes say which search it is.
    """

    def __init__(self, *args, max_t: int, links: StudyLinks | None = None, about: dict | None = None,
                 **kwargs) -> None:
        self.max_t, self.links, self.about = max_t, links, about or {}
        self._student_epochs: dict[str, int] = {}
        self._linked: set[str] = set()
        super().__init__(*args, **kwargs)

    def _setup_study(self, mode) -> None:
        super()._setup_study(mode)
        self._ot_study.set_metric_names([self._metric])  # the dashboard names the objective
        for key, value in self.about.items():
            self._ot_study.set_user_attr(key, value)

    def suggest(self, trial_id: str):
        config = super().suggest(trial_id)
        if trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_user_attr(RAY_TRIAL_ATTR, trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._link(trial_id)
        self._report_epoch(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._link(trial_id)
        if result:
            self._report_epoch(trial_id, result)
        epoch = (result or {}).get(TIME_ATTR) or 0
        if self.links is not None and trial_id in self._ot_trials and trial_id not in self._completed_trials:
            self._ot_trials[trial_id].set_user_attr(OUTCOME_ATTR, self.links.outcome(result or {}, error or None))
        if trial_id not in self._completed_trials and result and not error and not result.get(DIVERGED_KEY) \
                and 0 < epoch < self.max_t:
            trial = self._ot_trials[trial_id]
            trial.set_user_attr(ASHA_ATTR, f"stopped after student epoch {epoch} of {self.max_t}")
            prune(self._ot_study, trial)
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result=result, error=error)

    def _link(self, trial_id: str) -> None:
        if self.links is None or trial_id in self._linked or trial_id in self._completed_trials \
                or trial_id not in self._ot_trials:
            return
        run_id = self.links.run_of(trial_id)
        if run_id:
            self._ot_trials[trial_id].set_user_attr(MLFLOW_RUN_ATTR, run_id)
            self._ot_trials[trial_id].set_user_attr(MLFLOW_URL_ATTR, self.links.run_url(run_id))
            self._linked.add(trial_id)

    def _report_epoch(self, trial_id: str, result: dict) -> None:
        epoch, value = result.get(TIME_ATTR), result.get(self.metric)
        if (trial_id in self._completed_trials or trial_id not in self._ot_trials or result.get(DIVERGED_KEY)
                or not epoch or not is_number(value) or epoch <= self._student_epochs.get(trial_id, 0)):
            return
        self._ot_trials[trial_id].report(value, int(epoch))
        self._student_epochs[trial_id] = int(epoch)


def prune(study: optuna.Study, trial: optuna.Trial) -> None:
    """End `trial` PRUNED with no value. `study.tell` would give it its last intermediate value (Optuna leaves
    open whether a pruned trial should have one), and optuna-dashboard's history and slice plots would draw that
    early epoch's accuracy beside the final ones; its epochs stay in its intermediate values, which TPE ranks
    pruned trials by. The sampler hears of it as `tell` would tell it."""
    frozen = study._storage.get_trial(trial._trial_id)
    state = optuna.trial.TrialState.PRUNED
    try:
        study.sampler.after_trial(study, frozen, state, None)
    except RuntimeError:  # the grid sampler stops the study when its last point is told: told all the same
        pass
    finally:
        study._storage.set_trial_state_values(trial._trial_id, state, None)


OPTUNA_FILE = "optuna.db"  # every search's study, in one SQLite file under the storage path


def optuna_storage_url(spec: SearchSpec) -> str:
    return sqlite_uri(spec.storage / OPTUNA_FILE)


def optuna_storage(folder: Path) -> optuna.storages.RDBStorage:
    """The Optuna storage under `folder`, its tables created by one search at a time (searches started at once in
    one storage path would otherwise both create them, and one would fail)."""
    with ownership.creating(folder / OPTUNA_FILE):
        return optuna.storages.RDBStorage(sqlite_uri(folder / OPTUNA_FILE),
                                          engine_kwargs={"connect_args": {"timeout": 30}})


def check_store(folder: Path) -> None:
    """The Optuna store under `folder`, when it exists, is one this Optuna reads: checked before a search makes its
    folder, on a copy (opening a store writes its version records)."""
    path = folder / OPTUNA_FILE
    if check_sqlite_store(path, "an Optuna store", {"studies", "trials", "version_info"}) is None:
        return
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / OPTUNA_FILE
        with ownership.creating(path), contextlib.closing(sqlite3.connect(path)) as source, \
                contextlib.closing(sqlite3.connect(copy)) as target:
            source.backup(target)
        try:
            optuna.storages.RDBStorage(sqlite_uri(copy), skip_table_creation=True).engine.dispose()
        except Exception as err:  # whatever keeps Optuna from reading it (an old schema, missing rows)
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(f"{path} cannot be opened by Optuna {optuna.__version__} ({reason})") from None


def optuna_search(spec: SearchSpec, links: StudyLinks | None = None) -> StudentEpochOptuna:
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = optuna_storage(spec.storage)
    sampler = SAMPLERS.get(spec.strategy.sampler)(spec.strategy, spec.seed)
    return StudentEpochOptuna(space=spec.space, metric=METRIC, mode=MODE, points_to_evaluate=spec.points,
                              sampler=sampler, storage=storage, study_name=spec.name, max_t=spec.budget.max_t,
                              links=links, about=study_about(spec))


def study_about(spec: SearchSpec) -> dict[str, str]:
    """The study's user attributes: which search, what it maximises, what its trials train."""
    about = {"search": spec.definition.invocation, "objective": f"{METRIC} (maximised: the student's validation "
             f"accuracy, a fraction)", "teacher -> student": f"{spec.jobs.teacher.arch} -> {spec.jobs.student.arch}"}
    if spec.definition.teacher_objective:
        about["teacher objective"] = spec.definition.teacher_objective
    return about


def sampled_params(space) -> list[str]:
    """The parameters one draw of a define-by-run space sets."""
    return sorted(distributions(space))


def close_orphaned_trials(spec: SearchSpec) -> int:
    """Mark FAIL the study's trials still RUNNING after the search ended: asked for just before a driver
    was killed, they never reached a Tune trial, and the resumed search asked for fresh ones instead."""
    study = optuna.load_study(study_name=spec.name, storage=optuna_storage_url(spec))
    orphans = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in orphans:
        running = optuna.trial.Trial(study, trial._trial_id)
        running.set_user_attr("kdtune", "never ran: its driver was interrupted")
        study.tell(running, state=optuna.trial.TrialState.FAIL)
    return len(orphans)


RESTART_ADVICE = "start the search again under a new --name"


def tuner_for(spec: SearchSpec, trainable, make_run_config, links: StudyLinks | None = None):
    """The search stage's Tuner: the one a resumed search started (signed: `search.trust`), else a new one."""
    from ray import tune

    def new() -> tune.Tuner:
        budget = spec.budget
        scheduler = SCHEDULERS.get(spec.strategy.scheduler)(spec.strategy, budget.max_t)
        tune_config = tune.TuneConfig(search_alg=optuna_search(spec, links), scheduler=scheduler,
                                      num_samples=budget.num_samples,
                                      max_concurrent_trials=budget.max_concurrent_trials,
                                      reuse_actors=reuse_workers(spec))
        return tune.Tuner(trainable, tune_config=tune_config,
                          run_config=make_run_config(spec.name, partial(trial_description, spec.definition.label_names,
                                                                        points=spec.points), spec.storage,
                                                     search_progress(spec)))

    return trust.tuner(spec.experiment_dir, trainable, RESTART_ADVICE, new)


def search_progress(spec: SearchSpec) -> SearchProgress:
    return SearchProgress(spec.budget.num_samples, spec.budget.max_t, spec.stage_epochs, spec.definition.label_names)


def run_trials(spec: SearchSpec, trainable, make_run_config, links: StudyLinks | None = None):
    """The search's ResultGrid once every trial ended (`Interrupted` otherwise); `links` tie the study's trials to
    their MLflow runs."""
    grid = fit(tuner_for(spec, trainable, make_run_config, links), spec.experiment_dir)
    if grid.num_terminated + grid.num_errors < spec.budget.num_samples:
        raise Interrupted(spec.name)
    close_orphaned_trials(spec)
    return grid
