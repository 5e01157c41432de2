"""One search end to end: options -> checks -> data -> Ray -> teacher -> Tuner -> table, test, summary.

Every invalid input fails in `prepare`, before Ray starts or any trial runs, with one line.
`--resume` re-reads the options the search was started with and continues it with Tuner.restore;
the MLflow parent run, the trials' child runs and the Optuna study carry on where they were.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from distill import models
from distill.cli import ArgumentParser, run_cli
from distill.data import DataSplits, load_splits
from distill.errors import UserError
from search import plots, report, teachers, tracking
from search.definition import SearchDefinition
from search.options import (
    METRIC,
    MODE,
    PRESETS,
    TIME_ATTR,
    Jobs,
    add_common_options,
    build_jobs,
    check_common,
    max_t,
)
from trainables.common import STUDENT_FILE, TEACHER_FILE, load_net

STATE_FILE = "kdtune-search.json"  # in the experiment folder: the argv and MLflow parent of a search


@dataclass
class Prepared:
    """A checked search, ready to start: where it lives, what it trains, how it is tracked."""

    definition: SearchDefinition
    args: argparse.Namespace
    argv: list[str]
    storage: Path
    name: str
    jobs: Jobs
    space: object
    points: list[dict]
    tracking_uri: str
    experiment_name: str

    @property
    def experiment_dir(self) -> Path:
        return self.storage / self.name


def build_parser(definition: SearchDefinition) -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=f"python -m search.{definition.name}", description=definition.description,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser)
    definition.add_options(parser)
    return parser


def parse(definition: SearchDefinition, argv: Sequence[str]) -> argparse.Namespace:
    """Options with the chosen preset's values as defaults, so explicit options still win."""
    parser = build_parser(definition)
    known, _ = parser.parse_known_args(argv)
    if known.preset:
        parser.set_defaults(**PRESETS[known.preset])
    return parser.parse_args(argv)


def latest_search(storage: Path, search: str) -> str:
    """The most recently started search of this kind under `storage`, for a bare --resume."""
    found = sorted(storage.glob(f"{search}-*/{STATE_FILE}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(f"nothing to resume: no {search} search under {storage}")
    return found[-1].parent.name


def prepare(definition: SearchDefinition, argv: Sequence[str]) -> Prepared:
    """Parse and check everything a search needs, without starting anything."""
    argv = list(argv)
    args = parse(definition, argv)
    storage = Path(args.storage_path).expanduser().resolve()
    if args.resume:
        name = args.name or latest_search(storage, definition.name)
        state_path = storage / name / STATE_FILE
        if not state_path.is_file():
            raise UserError(f"nothing to resume: {state_path} does not exist")
        state = json.loads(state_path.read_text())
        argv = state["argv"]
        args = parse(definition, argv)
        # Found here, whatever folder it was started from; its runs live where it logged them
        # (a tracking URI it was given, perhaps through $MLFLOW_TRACKING_URI, else the default under storage).
        args.resume, args.storage_path, args.tracking_uri = True, str(storage), state.get("tracking_uri_option", args.tracking_uri)
    else:
        name = args.name or f"{definition.name}-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
        if (storage / name).exists():
            raise UserError(f"{storage / name} exists: pass --resume to continue that search, or another --name")
    check_common(args)
    for arch in (args.teacher, args.student):
        models.MODELS.get(arch)
    space, points = definition.space(args), definition.points(args)
    if args.teacher_checkpoint and not Path(args.teacher_checkpoint).is_file():
        raise UserError(f"teacher checkpoint not found: {args.teacher_checkpoint}")
    if args.gpus_per_trial > 0 and args.address is None and not torch.cuda.is_available():
        raise UserError(f"--gpus-per-trial {args.gpus_per_trial} asks for GPUs, but this machine has none "
                        "(or CUDA is not visible): use --gpus-per-trial 0, or --address for a GPU cluster")
    tracking_uri = tracking.resolve_tracking_uri(args.tracking_uri, storage)
    tracking.check_reachable(tracking_uri)
    return Prepared(definition, args, argv, storage, name, build_jobs(args), space, points, tracking_uri,
                    args.experiment_name or f"kdtune-{definition.name}")


def start_ray(args: argparse.Namespace) -> None:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Small trials checkpoint every epoch by design; Tune's "snapshot too often" advice is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if args.address:
        ray.init(address=args.address, log_to_driver=True)
        gpus = ray.cluster_resources().get("GPU", 0)
        if args.gpus_per_trial > 0 and gpus == 0:
            print(f"warning: the cluster at {args.address} has no GPU now; trials wait until the autoscaler adds "
                  "GPU nodes", file=sys.stderr)
    else:
        ray.init(address="local", include_dashboard=False, log_to_driver=True)  # never join a stray cluster


def run_config_for(prepared: Prepared, experiment_id: str, parent_id: str):
    """A RunConfig factory for every Tune experiment of this search (teacher and trials)."""
    from ray import tune

    def make(name: str, label: str) -> tune.RunConfig:
        trial_callback = tracking.MLflowTrials(prepared.tracking_uri, experiment_id, parent_id, label)
        return tune.RunConfig(
            name=name, storage_path=str(prepared.storage), callbacks=[trial_callback],
            failure_config=tune.FailureConfig(max_failures=prepared.args.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1), verbose=1,
        )

    return make


def optuna_search(prepared: Prepared):
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = optuna.storages.RDBStorage(optuna_storage_url(prepared),
                                         engine_kwargs={"connect_args": {"timeout": 30}})
    sampler = optuna.samplers.TPESampler(seed=prepared.args.seed, constant_liar=True, multivariate=True, group=True)
    return OptunaSearch(space=prepared.space, metric=METRIC, mode=MODE, points_to_evaluate=prepared.points,
                        sampler=sampler, storage=storage, study_name=prepared.name)


def optuna_storage_url(prepared: Prepared) -> str:
    return f"sqlite:///{prepared.storage / 'optuna.db'}"


def close_orphaned_trials(prepared: Prepared) -> int:
    """Mark FAIL the study's trials still RUNNING after the search ended: asked for just before a driver
    was killed, they never reached a Tune trial, and the resumed search asked for fresh ones instead."""
    import optuna

    study = optuna.load_study(study_name=prepared.name, storage=optuna_storage_url(prepared))
    orphans = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in orphans:
        running = optuna.trial.Trial(study, trial._trial_id)
        running.set_user_attr("kdtune", "never ran: its driver was interrupted")
        study.tell(running, state=optuna.trial.TrialState.FAIL)
    return len(orphans)


def tuner_for(prepared: Prepared, trainable, make_run_config):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    args = prepared.args
    if args.resume and tune.Tuner.can_restore(str(prepared.experiment_dir)):
        print(f"resuming {prepared.experiment_dir}", flush=True)
        return tune.Tuner.restore(str(prepared.experiment_dir), trainable=trainable, resume_errored=True)
    scheduler = ASHAScheduler(time_attr=TIME_ATTR, metric=METRIC, mode=MODE, max_t=max_t(args),
                              grace_period=args.grace_period, reduction_factor=args.reduction_factor)
    tune_config = tune.TuneConfig(search_alg=optuna_search(prepared), scheduler=scheduler,
                                  num_samples=args.num_samples, max_concurrent_trials=args.max_concurrent_trials)
    return tune.Tuner(trainable, tune_config=tune_config, run_config=make_run_config(prepared.name, "trial"))


def parent_run(prepared: Prepared, experiment_id: str) -> str:
    """The search's MLflow parent run: the saved one on --resume, else a new one (saved before any trial)."""
    state_path = prepared.experiment_dir / STATE_FILE
    if prepared.args.resume and state_path.is_file():
        return json.loads(state_path.read_text())["parent_run_id"]
    params = {k: v for k, v in vars(prepared.args).items() if k != "resume"}
    run_id = tracking.start_parent(prepared.tracking_uri, experiment_id, prepared.name, params)
    prepared.experiment_dir.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps({"argv": prepared.argv, "parent_run_id": run_id,
                                      "tracking_uri": prepared.tracking_uri,
                                      "tracking_uri_option": prepared.args.tracking_uri}, indent=2))
    return run_id


def run_search(definition: SearchDefinition, argv: Sequence[str] | None = None) -> int:
    from ray import tune

    prepared = prepare(definition, sys.argv[1:] if argv is None else argv)
    args, jobs = prepared.args, prepared.jobs
    splits = load_splits(jobs.student.data)
    trial_splits = replace(splits, test=splits.test.subset(torch.arange(0)))  # trials never see the test set
    brought = teachers.from_checkpoint(args.teacher_checkpoint, args.teacher, splits.num_classes) \
        if args.teacher_checkpoint else None  # a wrong checkpoint fails here, before Ray starts
    start_ray(args)
    experiment_id = tracking.experiment_id(prepared.tracking_uri, prepared.experiment_name, prepared.storage)
    parent_id = parent_run(prepared, experiment_id)
    make_run_config = run_config_for(prepared, experiment_id, parent_id)
    resources = {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial}
    teacher = brought or teachers.obtain(
        jobs.teacher, trial_splits, prepared.storage / "teachers",
        lambda job: teachers.train_with_tune(job, trial_splits, prepared.storage, resources, make_run_config))
    tracking.client(prepared.tracking_uri).set_tag(parent_id, "teacher_source", teacher.source)  # a tag: may change on resume
    inputs = definition.trainable_inputs(jobs, trial_splits, teacher.weights)
    trainable = tune.with_resources(tune.with_parameters(definition.trainable, **inputs), resources)
    print(f"{definition.name}: {args.num_samples} trials of {args.teacher} -> {args.student} on {splits.name} "
          f"({len(splits.student_train)} student images, {len(splits.val)} val); results in {prepared.experiment_dir}",
          flush=True)
    grid = tuner_for(prepared, trainable, make_run_config).fit()
    if grid.num_terminated + grid.num_errors < args.num_samples:
        print(f"interrupted after {grid.num_terminated + grid.num_errors} of {args.num_samples} trials; continue with:\n"
              f"  python -m search.{definition.name} --resume --storage-path {prepared.storage} --name {prepared.name}",
              file=sys.stderr)
        return 130
    close_orphaned_trials(prepared)
    return finish(prepared, grid, splits, teacher, parent_id)


def finish(prepared: Prepared, grid, splits: DataSplits, teacher: teachers.Teacher, parent_id: str) -> int:
    """Print the table and best config, test the best student once, write and log the summary."""
    args, definition = prepared.args, prepared.definition
    rows = report.trial_rows(grid, max_t(args))
    params = sorted({p for row in rows for p in row["config"]})
    print("\n" + report.table(rows, params, definition.columns))
    finished = [r for r in rows if r["state"] in ("complete", "stopped early") and r["checkpoint"] is not None]
    if not finished:
        raise UserError("no trial produced a student (every one diverged or failed): see the table above")
    best = max(finished, key=lambda r: r["metrics"][METRIC])
    print(f"\nbest trial {best['trial']}: {json.dumps(best['config'], default=str)}  "
          f"student val acc {best['metrics'][METRIC]:.4f} after {best['metrics'].get(TIME_ATTR)} epochs")
    client = tracking.client(prepared.tracking_uri)
    with best["checkpoint"].as_directory() as folder, tempfile.TemporaryDirectory() as scratch:
        student = load_net((Path(folder) / STUDENT_FILE).read_bytes(), args.student, splits.num_classes)
        test = run_test(student, splits, prepared)
        print("test (once, best trial): " + "  ".join(f"{k} {v:.4f}" for k, v in test.items()))
        for name in (STUDENT_FILE, TEACHER_FILE) if definition.teacher_artifact else (STUDENT_FILE,):
            client.log_artifact(parent_id, str(Path(folder) / name), "best_trial")
        figure = plots.search_scatter(rows, params, definition.plot_metrics, definition.log_params,
                                      Path(scratch) / f"{definition.name}.png")
        summary = summarize(prepared, rows, best, test, teacher, parent_id)
        text = summary_text(prepared, rows, params, best, test, teacher)
        paths = report.write_summary(prepared.experiment_dir, summary, text)
        for path in [*paths, *([figure] if figure else [])]:
            client.log_artifact(parent_id, str(path))
    tracking.log_metrics(client, parent_id, {f"best_{METRIC}": best["metrics"][METRIC], **test})
    client.set_terminated(parent_id, "FINISHED")
    print(f"\nsummary: {paths[1]}\ncompare the trials: mlflow ui --backend-store-uri {prepared.tracking_uri}")
    return 0


def run_test(student, splits: DataSplits, prepared: Prepared) -> dict[str, float]:
    from distill.runs import test_report

    return test_report(student, splits, prepared.jobs.student.runtime)


def summarize(prepared: Prepared, rows, best, test, teacher: teachers.Teacher, parent_id: str) -> dict:
    return {
        "search": prepared.definition.name, "name": prepared.name, "argv": prepared.argv,
        "best": {"trial": best["trial"], "config": best["config"], "metrics": best["metrics"]},
        "test": test, "teacher": teacher.describe(),
        "trials": [{k: v for k, v in row.items() if k != "checkpoint"} for row in rows],
        "mlflow": {"tracking_uri": prepared.tracking_uri, "experiment": prepared.experiment_name,
                   "parent_run_id": parent_id},
        "optuna": {"storage": optuna_storage_url(prepared), "study": prepared.name},
    }


def summary_text(prepared: Prepared, rows, params, best, test, teacher: teachers.Teacher) -> str:
    args = prepared.args
    counts = {state: sum(r["state"] == state for r in rows) for state in ("complete", "stopped early", "diverged", "error")}
    return "\n".join([
        f"# {prepared.definition.name}: {prepared.name}", "",
        (f"{args.teacher} -> {args.student} on {args.dataset} (few-shot {args.few_shot}, zero-shot "
         f"{args.zero_shot_classes or 'none'}), {len(rows)} trials: "
         + ", ".join(f"{n} {state}" for state, n in counts.items() if n) + "."),
        f"MLL teacher: {teacher.source}.", "",
        f"Best trial {best['trial']} (chosen on validation): `{json.dumps(best['config'], default=str)}`, "
        f"student val acc {best['metrics'][METRIC]:.4f}.",
        "Test, evaluated once for the best trial: " + ", ".join(f"{k} {v:.4f}" for k, v in test.items()) + ".", "",
        "```", report.table(rows, params, prepared.definition.columns), "```", "",
        f"MLflow: `mlflow ui --backend-store-uri {prepared.tracking_uri}`",
        f"Optuna: `optuna-dashboard {optuna_storage_url(prepared)}` (study {prepared.name})", "",
    ])


def main_for(definition: SearchDefinition):
    """The `main(argv)` of a search module, wrapped for one-line errors."""
    def main(argv: Sequence[str] | None = None) -> int:
        return run_search(definition, argv)

    return lambda argv=None: run_cli(main, argv)
