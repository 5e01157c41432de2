"""MLflow wiring: the default SQLite store, one parent run per search, one child run per trial.

Child runs are written by a Tune callback in the driver, so workers never need to reach MLflow.
Each child carries the Ray trial id as a tag; a resumed search finds its runs again by that tag, so a restore never
duplicates a run (the callback keeps no state for Tune to pickle).
"""
from __future__ import annotations

import contextlib
import json
import math
import shlex
import sqlite3
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ray import tune

from distill.errors import UserError
from search import console, ownership, plots
from search.options import METRIC, TIME_ATTR
from search.outcomes import is_number
from trainables.common import DIVERGED_KEY, STUDENT_FILE, TEACHER_FILE
from trainables.overrides import SEED_KEY

TRIAL_TAG = "ray_trial_id"
NODE_TAG = "ray_node_ip"  # the node that sent the trial's latest result; a retry may move it
RETRIES_TAG = "ray_retries"  # how often the trial was restarted from its checkpoint after its worker died
RETRY_REASON_TAG = "last_retry_reason"  # the error that caused the latest restart
PARENT_TAG = "mlflow.parentRunId"  # the run MLflow's runs page nests a run under
SEARCH_TAG = "kdtune.search_run"  # every run of a search names the search's own run, however deeply it is nested
ROLE_TAG = "kdtune.role"  # what a run is, so the MLflow UI can filter each stage: one of the roles below
SEARCH_ROLE, TEACHER_ROLE, TRIAL_ROLE, CONFIRM_ROLE = "search", "teacher", "trial", "confirm"
STAGE_ROLE, STAGE_TAG = "stage", "kdtune.stage"  # a run that holds one stage's runs; the role of the runs it holds
# Trial and confirmation runs sit under a run named for their stage, so the plain experiment page, expanded,
# shows the search's stages (and its teacher) rather than every run by creation time.
STAGE_NAMES = {TRIAL_ROLE: "search trials", CONFIRM_ROLE: "confirmation"}
CONFIG_TAG = "kdtune.config"  # a confirmation run's configuration: its key (top1, control, ...)
CONFIG_LABEL_TAG = "kdtune.config_label"  # ... and what a person reads (λ=0.304)
SEED_TAG = "kdtune.seed"  # a confirmation run's paired seed
OUTCOME_TAG = "kdtune.outcome"  # how a search or confirmation run ended: one of search.outcomes.OUTCOMES
FIRST_POINT_TAG = "kdtune.first_point"  # a trial whose values the search enqueued (a published default), not sampled
FIRST_POINT = "enqueued: the method's published values, tried first; not a finding of the sampler"
# MLflow 3 reads an experiment's kind from this tag; a kdtune experiment holds model-training runs.
EXPERIMENT_KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
STAGES = ("teacher", "student")  # metric prefixes; each is logged at its own epoch as the step
SETTINGS = ("epochs",)  # per-stage numbers a trial reports that are settings, logged once as params
SETTING_KEYS = frozenset(f"{stage}_{name}" for stage in STAGES for name in SETTINGS)  # student_epochs ...
TEST_MARK = "_test_"  # test scores (confirmation runs only) are logged once, when the run ends
PROBE_TIMEOUT_S = 5
MLFLOW_FILE = "mlflow.db"  # the default tracking store, under the storage path
# The stores MLflow 3.17 can track to (its file store is refused): a server, or a SQLAlchemy database.
TRACKING_SCHEMES = frozenset({"http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks"})


def resolve_tracking_uri(uri: str | None, results_dir: Path) -> str:
    """The store to log to: a SQLite file under the results folder by default, always an absolute URI."""
    if uri is None:
        return sqlite_uri(results_dir / MLFLOW_FILE)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        query = uri.partition("?")[1:]
        return sqlite_uri(sqlite_file(uri).expanduser()) + "".join(query)
    if "://" not in uri:
        raise UserError(f"tracking URI {uri!r} is not a URI: use http://host:5000 or sqlite:////abs/path/mlflow.db "
                        "(MLflow 3.17 refuses the bare file store)")
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower()  # postgresql+psycopg2:// -> postgresql
    if scheme not in TRACKING_SCHEMES:
        raise UserError(f"tracking URI {uri!r}: MLflow has no tracking store for {scheme}://; use http(s)://host:port, "
                        "sqlite:////abs/path/mlflow.db or a database URI (postgresql://, mysql://, mssql://)")
    return uri


def is_server(uri: str) -> bool:
    """Whether a tracking URI names a tracking server (which serves its own UI), not a database."""
    return uri.startswith(("http://", "https://"))


def check_reachable(uri: str) -> None:
    """Fail fast, with one line, when an HTTP tracking server does not answer its health check."""
    if not is_server(uri):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S) as answer:
            answer.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise UserError(f"cannot reach the MLflow tracking server at {uri} ({reason})") from None


def client(uri: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def experiment_id(uri: str, name: str, results_dir: Path) -> str:
    """The id of experiment `name`, created on first use. With a SQLite store its artifacts go to
    `results_dir/mlartifacts` (MLflow's default would be ./mlruns under whatever folder the driver ran in);
    a tracking server keeps (or proxies) its own."""
    database = sqlite_file(uri)
    with ownership.creating(database) if database else contextlib.nullcontext():  # one creator of tables and experiment
        mlflow_client = client(uri)
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment and database:
            relocate(database, experiment.artifact_location, results_dir)
            experiment = mlflow_client.get_experiment_by_name(name)
        if experiment:
            if experiment.tags.get(EXPERIMENT_KIND_TAG) != TRAINING_KIND:
                mlflow_client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
            return experiment.experiment_id
        location = (results_dir / ARTIFACTS).resolve().as_uri() if database else None
        return mlflow_client.create_experiment(name, artifact_location=location,
                                               tags={EXPERIMENT_KIND_TAG: TRAINING_KIND})


ARTIFACTS = "mlartifacts"  # a SQLite store's artifacts, beside it under the storage path


def relocate(database: Path, location: str, results_dir: Path) -> None:
    """A storage folder that was moved or copied logs into itself: when the SQLite store's kdtune experiments keep
    their artifacts under another storage path's `mlartifacts` (MLflow stores that location absolute), every
    experiment and run location under that old path is pointed into `results_dir`, once, in one transaction.
    MLflow has no call that moves an experiment's artifact location, so its two location columns are rewritten."""
    here = (results_dir / ARTIFACTS).resolve().as_uri()
    if database.resolve() != (results_dir / MLFLOW_FILE).resolve():  # a store of its own: its artifacts stay put
        return
    if location == here or not location.startswith("file://") or not location.endswith("/" + ARTIFACTS):
        return
    old_root, new_root = location[:-len(ARTIFACTS) - 1], here[:-len(ARTIFACTS) - 1]
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as db, db:
        for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri")):
            db.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                       f"WHERE substr({column}, 1, ?) = ?", (new_root, len(old_root) + 1, len(old_root) + 1,
                                                            old_root + "/"))
    console.say(f"storage moved: the MLflow store {database} now keeps its artifacts in {results_dir / ARTIFACTS} "
                f"(it pointed into {urllib.parse.unquote(old_root.removeprefix('file://'))})")


def sqlite_uri(path: Path) -> str:
    """The SQLAlchemy URI (MLflow's and Optuna's) of the SQLite file `path`, made absolute, with the characters a
    URI reads as query, fragment or escape quoted, so the path stays one path. Spaces and other letters stay as they
    are: MLflow 3.17 creates the file's folder from the URI without unquoting it (`search.spec` refuses a storage
    path that would need quoting for that reason)."""
    quoted = str(Path(path).resolve()).replace("%", "%25").replace("?", "%3F").replace("#", "%23")
    return "sqlite:///" + quoted


def sqlite_file(uri: str) -> Path | None:
    """The database file of a SQLite URI (`sqlite:////abs/mlflow.db`), or None for a server or another database."""
    return Path(urllib.parse.unquote(uri.split(":///", 1)[1].split("?", 1)[0])) if uri.startswith("sqlite:///") \
        else None


def check_sqlite_store(path: Path, what: str, tables: set[str]) -> str | None:
    """The schema revision (alembic's) of the SQLite file `path` holding `what` (its `tables`), read without writing
    to it, under the lock its creators hold (one being created now is waited for); None when it does not exist yet.
    A file that is not a database, or a database of another schema, is one UserError naming it."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    advice = "move it away (kdtune makes a new one in its place), or give another --storage-path"
    try:
        with ownership.creating(path), contextlib.closing(
                sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)) as db:
            found = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            revision = db.execute("SELECT version_num FROM alembic_version").fetchone() \
                if "alembic_version" in found else None
    except sqlite3.Error as err:
        raise UserError(f"{path} is damaged ({err}): it is not {what} kdtune can open; {advice}") from None
    missing = sorted((tables | {"alembic_version"}) - found)
    if missing or not revision:
        raise UserError(f"{path} is a SQLite database but not {what} (it lacks "
                        f"{'the tables ' + ', '.join(missing) if missing else 'a schema revision'}); {advice}")
    return str(revision[0])


def check_store(uri: str) -> None:
    """The SQLite tracking store of `uri`, when it exists, is an MLflow store of the schema this MLflow writes:
    checked, read-only, before a search makes its folder (MLflow itself would migrate whatever it opens)."""
    database = sqlite_file(uri)
    revision = check_sqlite_store(database, "an MLflow tracking store", {"experiments", "runs"}) if database else None
    if revision is None:
        return
    from mlflow.store.db.utils import _get_latest_schema_revision  # MLflow's own head; no public call says it

    import mlflow

    if revision != _get_latest_schema_revision():
        raise UserError(f"{database} holds an MLflow store of another schema ({revision}; MLflow {mlflow.__version__} "
                        f"writes {_get_latest_schema_revision()}): upgrade an older one with `mlflow db upgrade "
                        f"{shlex.quote(uri)}`, or use the MLflow that wrote it")


def start_parent(uri: str, experiment: str, run_name: str, params: dict) -> str:
    """A new parent run for a search, with the search's options as params."""
    mlflow_client = client(uri)
    run = mlflow_client.create_run(experiment, run_name=run_name, tags={ROLE_TAG: SEARCH_ROLE})
    log_params(mlflow_client, run.info.run_id, params)
    return run.info.run_id


def log_params(mlflow_client, run_id: str, params: dict) -> None:
    from mlflow.entities import Param

    items = [Param(str(k), str(v)[:6000]) for k, v in sorted(params.items())]
    for start in range(0, len(items), 100):
        mlflow_client.log_batch(run_id, params=items[start:start + 100])


NOTE_TAG = "mlflow.note.content"  # a run's description: MLflow's UI renders it as markdown on the run's page
NOTE_LIMIT = 8000  # the longest tag value MLflow stores


def describe_run(mlflow_client, run_id: str, markdown: str) -> None:
    """Set a run's description (at most `NOTE_LIMIT` characters; `report.run_description` fits a summary)."""
    mlflow_client.set_tag(run_id, NOTE_TAG, markdown[:NOTE_LIMIT])


SIGNIFICANT = 6  # digits a logged metric keeps: 0.341667, not 0.3416666686534882 (float32 noise) in every table


def shown_value(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT}g}")


def log_metrics(mlflow_client, run_id: str, metrics: dict[str, float], step: int = 0, finite: bool = True) -> None:
    """`metrics` at `step`, to `SIGNIFICANT` digits; non-numbers are dropped, and NaN or inf too unless `finite` is
    False."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    keep = is_number if finite else lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    items = [Metric(k, shown_value(float(v)), now, step) for k, v in metrics.items() if keep(v)]
    for start in range(0, len(items), 500):
        mlflow_client.log_batch(run_id, metrics=items[start:start + 500])


def stage_steps(result: dict) -> dict[str, dict[str, float]]:
    """Per stage, the metrics this result adds to that stage's curves, keyed by the stage's epoch.

    A result outside a stage (student_epoch 0 while the teacher trains, or teacher numbers carried
    into student reports) adds nothing to that stage's curves."""
    steps = {}
    for stage in STAGES:
        epoch = result.get(f"{stage}_epoch")
        if not epoch:
            continue
        metrics = {k: v for k, v in result.items()
                   if k.startswith(f"{stage}_") and TEST_MARK not in k and k not in SETTING_KEYS and is_number(v)}
        steps[stage] = (int(epoch), metrics)
    return steps


def stage_settings(result: dict) -> dict[str, object]:
    """The settings a result carries (student_epochs ...): parameters of the run, not curves."""
    return {k: v for k, v in result.items() if k in SETTING_KEYS}


def test_scores(result: dict) -> dict[str, float]:
    """The test scores a confirmation run reports with its last epoch (student_test_acc, teacher_test_cmi ...)."""
    return {k: v for k, v in result.items() if TEST_MARK in k and is_number(v)}


@dataclass(frozen=True)
class RunDescription:
    """What a Tune trial's MLflow run is: its name, tags and parameters, and its objective, if it has one.

    The objective is the run's first metric (NaN at step 0: no student yet), because MLflow's compare
    view plots a run set's first shared metric against the parameters."""

    name: str
    tags: dict[str, str]
    params: dict = field(default_factory=dict)
    objective: str | None = None


def label_for(config: dict, names: dict[str, str]) -> str:
    """'λ=0.304', 'T=4, α=0.9': the keys the search names (by their symbol, in its order; a derived key such as
    KD's CE weight = 1 - alpha is left unnamed), or every key when it names none."""
    if not names:
        return ", ".join(f"{k}={format_value(v)}" for k, v in sorted(config.items()))
    return ", ".join(f"{symbol}={format_value(config[key])}" for key, symbol in names.items() if key in config)


def config_label(config: dict, names: dict[str, str]) -> str:
    """A trial's configuration as people read it, its seed left out ('λ=0.304'); JSON when it names nothing."""
    return label_for({k: v for k, v in config.items() if k != SEED_KEY}, names) or json.dumps(config)


def trial_description(names: dict[str, str], config: dict, trial_id: str,
                      points: Sequence[dict] = ()) -> RunDescription:
    """A search trial: `λ=0.304 · 0b53ed38`, what differs first so the runs table shows it uncut; a trial that ran
    one of the search's enqueued `points` is tagged as such."""
    label = label_for(config, names)
    tags = {ROLE_TAG: TRIAL_ROLE, **({FIRST_POINT_TAG: FIRST_POINT} if is_first_point(config, points) else {})}
    return RunDescription(f"{label} · {trial_id}" if label else f"trial {trial_id}", tags, dict(config), METRIC)


def is_first_point(config: dict, points: Sequence[dict]) -> bool:
    """Whether `config` holds exactly the values of one of the enqueued `points` (the values Optuna was given)."""
    return any(all(config.get(key) == value for key, value in point.items()) for point in points)


def teacher_description(title: str, params: dict, config: dict, trial_id: str) -> RunDescription:
    """The MLL teacher's run: its architecture and recipe as parameters."""
    return RunDescription(title, {ROLE_TAG: TEACHER_ROLE}, {**params, **config})


def find_trial_run(mlflow_client, experiment: str, parent_run_id: str, trial_id: str) -> str | None:
    """The id of the run of search `parent_run_id` that logs Ray trial `trial_id`, if there is one."""
    found = mlflow_client.search_runs(
        [experiment], filter_string=f"tags.{TRIAL_TAG} = '{trial_id}' and tags.`{SEARCH_TAG}` = '{parent_run_id}'",
        max_results=1)
    return found[0].info.run_id if found else None


def stage_run(mlflow_client, experiment: str, parent_run_id: str, role: str) -> str:
    """The run that holds search `parent_run_id`'s runs of `role` (found again, or created under the search's run);
    the search's run itself for a role without a stage (its teacher)."""
    if role not in STAGE_NAMES:
        return parent_run_id
    found = children(mlflow_client, experiment, parent_run_id,
                     f"tags.`{ROLE_TAG}` = '{STAGE_ROLE}' and tags.`{STAGE_TAG}` = '{role}'")
    if found:
        return found[0].info.run_id
    run = mlflow_client.create_run(experiment, run_name=STAGE_NAMES[role], tags={
        PARENT_TAG: parent_run_id, SEARCH_TAG: parent_run_id, ROLE_TAG: STAGE_ROLE, STAGE_TAG: role})
    return run.info.run_id


def end_stages(tracking_uri: str, experiment: str, parent_run_id: str) -> None:
    """End FINISHED the stage runs of a search whose report is written."""
    mlflow_client = client(tracking_uri)
    for run in children(mlflow_client, experiment, parent_run_id, f"tags.`{ROLE_TAG}` = '{STAGE_ROLE}'"):
        if run.info.status != "FINISHED":
            mlflow_client.set_terminated(run.info.run_id, "FINISHED")


def drop_orphans(tracking_uri: str, experiment: str, parent_run_id: str, role: str, trial_ids: set[str]) -> int:
    """Soft-delete the still-RUNNING child runs of `role` whose Ray trial is not among `trial_ids`: a trial the
    callback logged as started just before the driver was killed, which Tune had not yet saved, so the resumed
    experiment never ran it (its sampler asked again). Returns how many; each trial then has one run."""
    mlflow_client = client(tracking_uri)
    runs = children(mlflow_client, experiment, parent_run_id, f"tags.`{ROLE_TAG}` = '{role}'")
    orphans = [run for run in runs if run.info.status in UNFINISHED and run.data.tags.get(TRIAL_TAG) not in trial_ids]
    for run in orphans:
        mlflow_client.delete_run(run.info.run_id)
    return len(orphans)


UNFINISHED = ("RUNNING", "KILLED")  # a trial run still training, or ended KILLED by an interrupted driver


def children(mlflow_client, experiment: str, parent_run_id: str, condition: str = "") -> list:
    """Every run of search `parent_run_id`, nested at any depth (meeting `condition`, an MLflow filter), page by
    page."""
    query = f"tags.`{SEARCH_TAG}` = '{parent_run_id}'" + (f" and {condition}" if condition else "")
    found, token = [], None
    while True:
        page = mlflow_client.search_runs([experiment], filter_string=query, max_results=1000, page_token=token)
        found += list(page)
        token = page.token
        if not token:
            return found


def end_running_children(tracking_uri: str, experiment: str, parent_run_id: str) -> int:
    """End KILLED the child runs an interrupted driver leaves RUNNING (a resume reopens those it continues)."""
    mlflow_client = client(tracking_uri)
    running = children(mlflow_client, experiment, parent_run_id, "attributes.status = 'RUNNING'")
    for run in running:
        mlflow_client.set_terminated(run.info.run_id, "KILLED")
    return len(running)


def trial_run_of(tracking_uri: str, experiment: str, parent_run_id: str, trial_id: str) -> str | None:
    """`find_trial_run` by tracking URI: a picklable link from a Ray trial to its MLflow run."""
    return find_trial_run(client(tracking_uri), experiment, parent_run_id, trial_id)


class MLflowTrials(tune.Callback):
    """Logs each Ray Tune trial as a child run of the search's parent run, once, across restores."""

    def __init__(self, tracking_uri: str, experiment: str, parent_run_id: str,
                 describe: Callable[[dict, str], RunDescription],
                 outcome: Callable[[dict, object], str] | None = None) -> None:
        """`describe(config, trial_id)` says what each run is; `outcome(last result, error)` what became of it
        (the `kdtune.outcome` tag). Both picklable: Tune saves this callback with the experiment."""
        self.tracking_uri, self.experiment, self.parent_run_id = tracking_uri, experiment, parent_run_id
        self.describe, self.outcome = describe, outcome
        self.runs: dict[str, str] = {}
        self.stages: dict[str, str] = {}  # role -> the stage run that holds its runs
        self.nodes: dict[str, str] = {}
        self.settings: set[tuple[str, str]] = set()
        self._client = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_client": None}

    @property
    def mlflow(self):
        if self._client is None:
            self._client = client(self.tracking_uri)
        return self._client

    def run_id(self, trial) -> str:
        """The trial's child run: remembered, found again by tag after a restore, or created."""
        if trial.trial_id in self.runs:
            return self.runs[trial.trial_id]
        run_id = find_trial_run(self.mlflow, self.experiment, self.parent_run_id, trial.trial_id)
        if run_id:
            self.mlflow.update_run(run_id, status="RUNNING")
        else:
            description = self.describe(trial.config, trial.trial_id)
            role = description.tags.get(ROLE_TAG, "")
            if role not in self.stages:
                self.stages[role] = stage_run(self.mlflow, self.experiment, self.parent_run_id, role)
            run = self.mlflow.create_run(
                self.experiment, run_name=description.name,
                tags={**description.tags, PARENT_TAG: self.stages[role], SEARCH_TAG: self.parent_run_id,
                      TRIAL_TAG: trial.trial_id})
            run_id = run.info.run_id
            log_params(self.mlflow, run_id, description.params)
            if description.objective:
                log_metrics(self.mlflow, run_id, {description.objective: math.nan}, 0, finite=False)
        self.runs[trial.trial_id] = run_id
        return run_id

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        """Open the trial's run; a run an interrupted driver ended KILLED is RUNNING again while its trial resumes."""
        run_id = self.run_id(trial)
        if self.mlflow.get_run(run_id).info.status != "RUNNING":
            self.mlflow.update_run(run_id, status="RUNNING")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        run_id = self.run_id(trial)
        node = result.get("node_ip")
        if node and self.nodes.get(trial.trial_id) != node:
            self.mlflow.set_tag(run_id, NODE_TAG, node)
            self.nodes[trial.trial_id] = node
        settings = {k: v for k, v in stage_settings(result).items() if (run_id, k) not in self.settings}
        if settings:
            log_params(self.mlflow, run_id, settings)
            self.settings.update((run_id, k) for k in settings)
        for epoch, metrics in stage_steps(result).values():
            log_metrics(self.mlflow, run_id, metrics, epoch)

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        """A trial whose worker died, about to be restarted from its last checkpoint: say so on its run."""
        run_id = self.run_id(trial)
        self.mlflow.set_tag(run_id, RETRIES_TAG, str(trial.num_failures))
        self.mlflow.set_tag(run_id, RETRY_REASON_TAG, error_summary(trial))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        run_id = self.run_id(trial)
        result = trial.last_result or {}
        reason = result.get("failure_reason")
        if reason:
            self.mlflow.set_tag(run_id, "failure_reason", reason)
        if result.get(DIVERGED_KEY):  # the score Tune and Optuna saw, so every trial run has the objective
            log_metrics(self.mlflow, run_id, {METRIC: result.get(METRIC)}, int(result.get(TIME_ATTR) or 0))
        log_metrics(self.mlflow, run_id, test_scores(result))
        if self.outcome is not None:
            self.mlflow.set_tag(run_id, OUTCOME_TAG, self.outcome(result, None))
        self._log_artifacts(run_id, trial)
        self.mlflow.set_terminated(run_id, status="FAILED" if reason else "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        run_id = self.run_id(trial)
        reason = error_summary(trial)
        self.mlflow.set_tag(run_id, "failure_reason", reason)
        if self.outcome is not None:
            self.mlflow.set_tag(run_id, OUTCOME_TAG, self.outcome(trial.last_result or {}, reason))
        self.mlflow.set_terminated(run_id, status="FAILED")

    def _log_artifacts(self, run_id: str, trial) -> None:
        """The trial's final weights and its per-epoch curves (drawn from what MLflow holds)."""
        with tempfile.TemporaryDirectory() as folder:
            curves = plots.trial_curves(self.mlflow, run_id, Path(folder) / "curves.png")
            if curves is not None:
                self.mlflow.log_artifact(run_id, str(curves))
        if trial.checkpoint is not None:
            with trial.checkpoint.as_directory() as checkpoint:
                weights = [Path(checkpoint) / name for name in (STUDENT_FILE, TEACHER_FILE)]
                present = [path for path in weights if path.exists()]
                if present:  # the student; a teacher run's own weights otherwise
                    self.mlflow.log_artifact(run_id, str(present[0]))


def format_value(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def error_summary(trial) -> str:
    """The last line of the trial's error file, or a generic reason."""
    path = getattr(trial, "error_file", None)
    try:
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()] if path else []
    except OSError:
        lines = []
    return lines[-1][:500] if lines else "the trial failed; see its error file under the storage path"
