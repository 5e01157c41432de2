"""One search end to end: spec -> data -> Ray -> MLL teacher -> search stage -> confirmation -> report.

Each stage's outcome is saved in the search's state (`search.state`) before the next starts, so
`--resume` continues where the driver stopped and never repeats a finished stage; a finished search
only changes when `--confirm-only` extends its confirmation.
"""
from __future__ import annotations

import contextlib
import json
import os
import resource
import shlex
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import torch

from distill.cli import run_cli
from distill.data import DataSplits, load_splits
from distill.errors import UserError
from distill.metrics import shown
from distill.runs import batch_warning, check_student_job, check_teacher_job, evaluate_split, test_report
from search import (
    confirm, console, curves, fidelity, mlflow_ui, outcomes, ownership, packing, plots, report, strategies, teachers,
    ties, tracking, trust, tuning,
)
from search.definition import SearchDefinition
from search.options import METRIC, TIME_ATTR
from search.spec import SearchSpec, build_spec
from search.state import CONFIRMING, DONE, SEARCHING, STATE_FILE, Outcome, SearchState
from spaces import variants
from trainables.common import STUDENT_FILE, TEACHER_FILE, load_net
from trainables.metrics import TEACHER_VAL_CMI
from trainables.overrides import SEED_KEY, student_job_for

CLUSTER_PROBE_TIMEOUT_S = 5  # how long --address's host:port may take to accept a connection


def join_cluster(address: str) -> None:
    """Join the Ray cluster at `address`, or fail with one line. Left to itself, Ray retries an address where
    nothing listens for minutes, and gives up on a cluster that wants a token this process lacks (`ray start`
    turns token authentication on) after 20 s of retries, with a traceback."""
    import ray

    host, separator, port = address.split("://", 1)[-1].rpartition(":")
    if separator and port.isdigit():
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=CLUSTER_PROBE_TIMEOUT_S).close()
        except OSError as err:
            raise UserError(f"no Ray cluster answers at {address} ({err.strerror or err}): start one with "
                            "`ray start --head`, or give its head's address") from None
    try:
        ray.init(address=address, log_to_driver=True)
    except ConnectionError as err:
        cause = str(err.__cause__ or err).strip()  # Ray's own reason is the last line of the chained error
        if "AuthenticationError" in cause:
            raise UserError(f"cannot join the Ray cluster at {address}: it refuses this process's authentication "
                            "token (none, or not the cluster's); set RAY_AUTH_MODE=token here, with "
                            "RAY_AUTH_TOKEN_PATH naming the cluster's token where it is not ~/.ray/auth_token") from None
        reason = cause.splitlines()[-1] if cause else type(err).__name__
        raise UserError(f"cannot join the Ray cluster at {address}: {reason}") from None


def start_ray(spec: SearchSpec, image_side: int) -> SearchSpec:
    """Start (or join) Ray; the spec with the trials' GPU share and concurrency filled in from what Ray sees."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Small trials checkpoint every epoch by design; Tune's "snapshot too often" advice is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if spec.address:
        join_cluster(spec.address)
    else:
        # Never join a stray cluster. Ray Train's placement-group cleaner asks the dashboard's state API whether a
        # multi-worker trial's Train controller still lives, so those searches start it (when it is installed).
        ray.init(address="local", include_dashboard=None if spec.resources["workers"] > 1 else False,
                 log_to_driver=True)
    available = ray.cluster_resources()
    if spec.address and not available.get("GPU"):
        if spec.resources["gpu"]:
            console.say(f"warning: the cluster at {spec.address} has no GPU now; trials wait until the autoscaler "
                        "adds GPU nodes", warning=True)
        elif spec.resources["gpu"] is None:
            console.say(f"warning: the cluster at {spec.address} has no GPU now, so the trials will train on CPUs; on "
                        "a cluster whose autoscaler adds GPU nodes, pass --gpus-per-trial (e.g. 0.25) to ask for them",
                        warning=True)
    packed = packing.pack(spec.resources["gpu"], spec.budget.max_concurrent_trials, available.get("GPU", 0),
                          available.get("CPU", 1), spec.resources["cpu"], image_side, spec.resources["workers"])
    if packed.note:
        console.say(packed.note)
    return replace(spec, resources={**spec.resources, "gpu": packed.gpus_per_trial},
                   budget=replace(spec.budget, max_concurrent_trials=packed.max_concurrent_trials),
                   options={**spec.options, "gpus_per_trial": packed.gpus_per_trial,
                            "max_concurrent_trials": packed.max_concurrent_trials})


def run_config_for(spec: SearchSpec, experiment_id: str, parent_id: str, outcome=None):
    """A RunConfig factory for the Tune experiments of this search (teacher, trials, confirmation batches), each
    with its stage's progress line; `outcome(last result, error)` names what became of each run, for its MLflow tag."""
    from ray import tune

    def make(name: str, describe, storage: Path, progress: tune.Callback) -> tune.RunConfig:
        trial_callback = tracking.MLflowTrials(spec.tracking_uri, experiment_id, parent_id, describe, outcome)
        return tune.RunConfig(
            name=name, storage_path=str(storage), callbacks=[trial_callback, trust.signer(), progress],
            failure_config=tune.FailureConfig(max_failures=spec.budget.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1), verbose=1,
        )

    return make


def new_state(spec: SearchSpec, experiment_id: str, splits: DataSplits) -> SearchState:
    """A new parent run (the options as used, the validation split's actual size) and the state that
    remembers it, saved before any trial starts."""
    options = {**spec.options, "val_size": len(splits.val)}
    run_id = tracking.start_parent(spec.tracking_uri, experiment_id, spec.name, options)
    state = SearchState(list(spec.argv), run_id, spec.tracking_uri, spec.tracking_uri_option,
                        search=spec.definition.name, command=spec.definition.invocation)
    state.write(spec.experiment_dir)
    return state


def trials_view(spec: SearchSpec, experiment_id: str, parent_id: str, params: list[str]) -> str:
    """The MLflow link that shows this search's trials with `params` as columns (saved on the experiment)."""
    key = mlflow_ui.share_trials_view(tracking.client(spec.tracking_uri), experiment_id, parent_id, params,
                                      spec.definition.columns, spec.name)
    return mlflow_ui.view_url(spec.ui_url, experiment_id, key)


def run_search(definition: SearchDefinition, argv: Sequence[str] | None = None) -> int:
    spec = build_spec(definition, sys.argv[1:] if argv is None else argv)
    if spec.state is not None and spec.state.stage == DONE and not spec.confirm_only:
        print(f"{spec.name} has finished: {spec.experiment_dir / 'summary.md'}. Nothing to do; extend its "
              f"confirmation with --confirm-only --name {spec.name} --confirm-seeds N")
        return 0
    jobs = spec.jobs
    splits = load_splits(jobs.student.data)
    trial_splits = replace(splits, test=splits.test.subset(torch.arange(0)))  # search trials never see the test set
    check_trial_students(spec, splits)
    warn_batch_sizes(spec, splits)
    brought = teachers.brought(spec, trial_splits)  # a wrong checkpoint fails here, before Ray starts
    teachers.check_before_start(spec, trial_splits)
    check_restorable(spec)
    tracking.check_store(spec.tracking_uri)
    tuning.check_store(spec.storage)
    allow_open_files()
    owner = ownership.claim(spec.experiment_dir, new=spec.state is None, command=spec.resume_command())
    try:
        return run_captured(spec, splits, trial_splits, brought)
    finally:
        owner.release(keep_if=STATE_FILE)


TERMINAL_TRIALS = 20  # rows of the trials table the terminal's summary shows; summary.md holds them all


def run_captured(spec: SearchSpec, splits: DataSplits, trial_splits: DataSplits,
                 brought: teachers.Teacher | None) -> int:
    """The search with everything Ray and the libraries print in the search's log (`search.console`), the terminal
    keeping the search's own lines and progress; its last words (the summary, or how to resume) come once Ray has
    stopped, so nothing is printed after them."""
    log = spec.experiment_dir / console.LOG_FILE
    with console.capture(log, spec.verbose) as captured:
        console.say(f"log: {log} holds Ray's tables and the workers' lines"
                    + ("" if spec.verbose else " (--verbose shows them here)"))
        try:
            code, last_words = run_owned(spec, splits, trial_splits, brought)
            if code:  # how to resume, at once: a second Ctrl-C may cut Ray's shutdown short
                console.current().end_status()
                console.say(last_words, warning=True)
        finally:
            stop_ray()
            captured.stop()
        if not code:
            console.say(last_words)
        return code


def stop_ray() -> None:
    """Leave Ray (stopping the local instance this driver started), so that no worker's line comes after the end."""
    import ray

    ray.shutdown()


MIN_OPEN_FILES = 128  # a one-trial digits search ran with 64 and failed inside Ray with 40; twice the former
OPEN_FILES = 65536  # what the soft limit is raised to, where the hard limit allows


def allow_open_files() -> None:
    """Let this driver (and the Ray processes it starts) open as many files as the hard limit allows; a hard limit
    too low for Ray is one line, not a Ray traceback halfway into the search."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < MIN_OPEN_FILES:
        raise UserError(f"this shell lets a process open only {hard} files (ulimit -n), and Ray's processes need "
                        f"more: raise it (ulimit -n 4096) and run the search again")
    wanted = OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):  # macOS caps a process below an infinite hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def check_restorable(spec: SearchSpec) -> None:
    """A resumed search's unfinished Tune experiments (its trials, its confirmation batches) carry this user's
    signature (`search.trust`) and sit where they were started (Ray's pickles hold the stores' paths): checked
    before anything of the search is touched."""
    if spec.state is None:
        return
    unfinished = [spec.experiment_dir] if spec.state.stage == SEARCHING else []
    unfinished += [spec.experiment_dir / batch.name for batch in spec.state.confirm.batches if not batch.done]
    for folder in unfinished:
        trust.check(folder, tuning.RESTART_ADVICE)


def check_trial_students(spec: SearchSpec, splits: DataSplits) -> None:
    """Every student a trial or a baseline may train, checked against both nets before Ray starts: the fixed
    distiller settings and each categorical branch of the space (layers, critics), so that a layer either net
    lacks, or a size this machine's trials cannot fit, is the one line `distill.train` gives, not a failed trial."""
    configs = [{}, *variants.categorical_variants(spec.space), *spec.points,
               *(baseline.config for baseline in spec.baselines)]
    distinct = {json.dumps({k: v for k, v in c.items() if k != SEED_KEY}, sort_keys=True, default=str): c
                for c in configs}  # a recorded grid's seeds do not change what a student is built from
    device, workers = trial_device(spec), spec.resources["workers"]
    teachers_trained = [] if spec.teacher_checkpoint or spec.pretrained_teacher else [spec.jobs.teacher]
    teachers_trained += [spec.jobs.stage.job] if spec.jobs.stage is not None else []
    for job in teachers_trained if device is not None else ():
        check_teacher_job(job, splits.num_classes, splits.train.image_shape, len(splits.train), device, workers)
    for config in distinct.values():
        check_student_job(student_job_for(spec.jobs.student, config), splits.num_classes,
                          splits.student_train.image_shape, splits.student_train.labels, device, workers)


def trial_device(spec: SearchSpec) -> torch.device | None:
    """Where this machine's trials train (a GPU when they use one), for the memory checks; None on a cluster, whose
    workers each check their own trial before it allocates anything."""
    if spec.address:
        return None
    gpus = spec.resources["gpu"]
    return torch.device("cuda" if torch.cuda.is_available() and (gpus is None or gpus > 0) else "cpu")


def warn_batch_sizes(spec: SearchSpec, splits: DataSplits) -> None:
    """Say so (once per stage) when a stage's batch is larger than the images it trains on."""
    stages = {"teacher": (spec.jobs.teacher, len(splits.train)), "student": (spec.jobs.student,
                                                                             len(splits.student_train))}
    for stage, (job, images) in stages.items():
        warning = batch_warning(job.recipe().batch_size, images, f"{stage} training")
        if warning:
            print(f"warning: {warning}", file=sys.stderr)


def run_owned(spec: SearchSpec, splits: DataSplits, trial_splits: DataSplits,
              brought: teachers.Teacher | None) -> tuple[int, str]:
    """The search, once this driver owns its folder: Ray, the parent run, the stages; Ctrl-C ends it resumable.
    Its exit code and last words: the summary, or the command that resumes it."""
    spec = start_ray(spec, image_side=max(splits.train.image_shape[1:]))
    terminated = sigterm_as_interrupt()
    experiment_id = tracking.experiment_id(spec.tracking_uri, spec.experiment_name, spec.storage)
    state = spec.state or new_state(spec, experiment_id, splits)
    try:
        tracking.client(spec.tracking_uri).update_run(state.parent_run_id, status="RUNNING")
        console.say(links_text("follow the trials in MLflow", spec,
                               [("the trials, best first", trials_view(spec, experiment_id, state.parent_run_id,
                                                                       tuning.sampled_params(spec.space)))]))
        return 0, run_stages(spec, state, splits, trial_splits, brought, experiment_id)
    except (tuning.Interrupted, KeyboardInterrupt):
        end_search_run(spec, experiment_id, state, "KILLED")
        how = f"stopped by {signal.Signals(terminated[0]).name}" if terminated else "interrupted"
        return (128 + terminated[0] if terminated else 130), f"{how}; continue with:\n  {spec.resume_command()}"
    except BaseException:
        end_search_run(spec, experiment_id, state, "FAILED")  # the error itself is reported by run_cli
        raise


def sigterm_as_interrupt() -> list[int]:
    """SIGTERM (what `timeout`, Slurm, Kubernetes send) stops the search as Ctrl-C does: Tune saves and stops the
    trials, the runs end KILLED, the resume command is printed. It replaces the handler `ray.init` installs, which
    exits at once (a C++ abort, exit 134). The list returned holds the signal once it arrived."""
    received: list[int] = []

    def handler(signum: int, frame) -> None:
        received.append(signum)
        interrupt = signal.getsignal(signal.SIGINT)  # Tune's own while a Tune experiment runs
        if not callable(interrupt):
            raise KeyboardInterrupt
        interrupt(signal.SIGINT, frame)

    signal.signal(signal.SIGTERM, handler)
    return received


def end_search_run(spec: SearchSpec, experiment_id: str, state: SearchState, status: str) -> None:
    """The parent run ends `status`; the trial and confirmation runs it stopped mid-training end KILLED."""
    tracking.end_running_children(spec.tracking_uri, experiment_id, state.parent_run_id)
    tracking.client(spec.tracking_uri).set_terminated(state.parent_run_id, status)


def run_stages(spec: SearchSpec, state: SearchState, splits: DataSplits, trial_splits: DataSplits,
               brought: teachers.Teacher | None, experiment_id: str) -> str:
    """The teacher, then whichever stages the search has not finished, then the report; the terminal's summary."""
    definition, jobs = spec.definition, spec.jobs
    client = tracking.client(spec.tracking_uri)
    teacher = brought or teachers.obtain(
        jobs.teacher, trial_splits, spec.storage / "teachers",
        lambda job: teachers.train_with_tune(job, trial_splits, spec.storage, spec.place,
                                             run_config_for(spec, experiment_id, state.parent_run_id)))
    client.set_tag(state.parent_run_id, "teacher_source", teacher.source)  # a tag: may change on resume
    outcome = partial(outcomes.outcome, max_t=spec.budget.max_t, reference_acc=teacher.val_acc)
    make_run_config = run_config_for(spec, experiment_id, state.parent_run_id, outcome)
    drop_orphans = partial(tracking.drop_orphans, spec.tracking_uri, experiment_id, state.parent_run_id)
    if state.stage == SEARCHING:
        inputs = definition.trainable_inputs(jobs, trial_splits, teacher.weights)
        trainable = spec.place(definition.trainable, **inputs)
        console.say(f"{definition.name}: {spec.budget.num_samples} trials of {jobs.teacher.arch} -> "
                    f"{jobs.student.arch} on {splits.name} ({len(splits.student_train)} student images, "
                    f"{len(splits.val)} val); results in {spec.experiment_dir}")
        links = tuning.StudyLinks(partial(tracking.trial_run_of, spec.tracking_uri, experiment_id, state.parent_run_id),
                                  partial(mlflow_ui.run_url, spec.ui_url, experiment_id), outcome)
        grid = tuning.run_trials(spec, trainable, make_run_config, links)
        drop_orphans(tracking.TRIAL_ROLE, tuning.trial_ids(grid))
        state.outcome = conclude_search(spec, grid, splits, state.parent_run_id, teacher)
        _, rows = record_curves(spec, state)
        state.outcome.trust = early_trust(spec, rows, state.parent_run_id)
        state.stage = CONFIRMING if spec.confirm.enabled else DONE
        state.write(spec.experiment_dir)
    if state.stage == CONFIRMING or spec.confirm_only:  # confirm_only: extend a finished search's confirmation
        state.stage = CONFIRMING
        confirm.run_stage(spec, state, splits, teacher.weights, make_run_config, drop_orphans)
        state.stage = DONE
        state.write(spec.experiment_dir)
    return write_report(spec, state, teacher, experiment_id, splits)


def early_trust(spec: SearchSpec, rows: list[dict], parent_id: str) -> list[dict]:
    """How well each student epoch ranked the trials that ran to the end (`search.fidelity`): said on the terminal
    (with a warning when ASHA's first rung is weak) and logged as the parent's `early_rank_corr` by epoch."""
    trust = fidelity.search_trust([r for r in rows if r["stage"] == curves.SEARCH_STAGE], spec.budget.max_t,
                                  spec.seed)
    for line in fidelity.trust_lines(trust, first_rung(spec), finished_trials(rows, spec.budget.max_t)):
        console.say(line, warning=line.startswith("warning:"))
    client = tracking.client(spec.tracking_uri)
    for point in trust:
        tracking.log_metrics(client, parent_id, {fidelity.TRUST_METRIC: point["rho"]}, point["epoch"])
    return trust


def finished_trials(rows: list[dict], max_t: int) -> int:
    """Search trials whose student reached `max_t` epochs."""
    return len({r["trial_id"] for r in rows if r["stage"] == curves.SEARCH_STAGE and r[TIME_ATTR] >= max_t})


def first_rung(spec: SearchSpec) -> int | None:
    return spec.strategy.grace_period if spec.strategy.scheduler == "asha" else None


def record_curves(spec: SearchSpec, state: SearchState) -> tuple[Path, list[dict]]:
    """`NAME/trials.parquet`: every epoch of every search trial and confirmation run so far, with the search's
    parameters and their scales in its metadata (what `search.replay` needs)."""
    trials = state.outcome.trials if state.outcome else []
    rows = curves.experiment_rows(spec.experiment_dir, curves.SEARCH_STAGE, {t["trial"]: t["outcome"] for t in trials},
                                  spec.seed)
    confirmed = {r["trial"]: r["state"] for r in state.confirm.results.values()}
    for batch in state.confirm.batches:
        rows += curves.experiment_rows(spec.experiment_dir / batch.name, curves.CONFIRM_STAGE, confirmed, spec.seed)
    params = [p for p in tuning.sampled_params(spec.space) if p != SEED_KEY]
    metadata = {"search": spec.definition.name, "command": spec.definition.invocation, "name": spec.name,
                "params": params, "log_params": sorted(spec.definition.log_params & set(params)), "metric": METRIC,
                "max_t": spec.budget.max_t, "points": spec.points, "strategy": asdict(spec.strategy),
                "ranges": {k: v for k, v in strategies.ranges(strategies.sampled_space(spec.space)).items()
                           if k in params},
                "baselines": [{"key": b.key, "config": b.config} for b in spec.baselines]}
    return curves.write(spec.experiment_dir, rows, metadata), rows


def conclude_search(spec: SearchSpec, grid, splits: DataSplits, parent_id: str, mll: teachers.Teacher) -> Outcome:
    """The search stage's table and best trial; the best trial's weights and the parameter figure on the
    parent run; and, when nothing is confirmed, the best student's test accuracy (evaluated once).
    The MLL teacher's validation accuracy is what a collapsed trial teacher fell from; with a teacher stage its
    reliability diagram and Eigen-CAM maps go beside the best trial's teacher's."""
    definition, reference_acc, mll_weights = spec.definition, mll.val_acc, mll.weights
    rows = report.trial_rows(grid, spec.budget.max_t, reference_acc)
    for row in rows:
        row["first_point"] = tracking.is_first_point(row["config"], spec.points)
    params = sorted({p for row in rows for p in row["config"]})
    answer = spec.answer([r for r in rows if r["checkpoint"] is not None], params)
    best = answer.best
    if best is None:
        console.say(report.table(rows, params, definition.columns))
        raise UserError("no trial produced a student (every one diverged or failed): see the table above, and "
                        f"each trial's error in {spec.experiment_dir / console.LOG_FILE}")
    client = tracking.client(spec.tracking_uri)
    test = {}
    with best["checkpoint"].as_directory() as folder, tempfile.TemporaryDirectory() as scratch:
        if not spec.confirm.enabled:
            student = load_net((Path(folder) / STUDENT_FILE).read_bytes(), spec.jobs.student.arch, splits.num_classes)
            test = test_report(student, splits, spec.jobs.student.runtime)
        for name in (STUDENT_FILE, TEACHER_FILE) if definition.teacher_stage else (STUDENT_FILE,):
            client.log_artifact(parent_id, str(Path(folder) / name), "best_trial")
        mll_cmi = mll_val_cmi(spec, splits, mll_weights) if definition.teacher_stage else None
        log_search_figure(spec, client, parent_id, rows, params, mll_cmi)
        if definition.teacher_stage:  # the MLL teacher beside the best trial's own
            others = {f"best trial's teacher ({best['trial']})": (Path(folder) / TEACHER_FILE).read_bytes()}
            log_teacher_pictures(spec, client, parent_id, splits, mll_weights, others, Path(scratch))
    tracking.log_metrics(client, parent_id, {METRIC: best["metrics"][METRIC], **test})  # the best trial's objective
    keep = ("trial", "state", "outcome", "config", "metrics", "curve", "reason", "first_point")
    noise = asdict(answer.noise) if answer.noise else None
    return Outcome(trials=[{k: row[k] for k in keep} for row in rows], best={k: best[k] for k in keep},
                   params=params, test=test, pick=answer.rule, noise=noise,
                   tied=[{k: row[k] for k in keep} for row in answer.tied], mll_val_cmi=mll_cmi,
                   left_out=dict(answer.ties.left_out))


def log_search_figure(spec: SearchSpec, client, parent_id: str, rows: list[dict], params: list[str],
                      mll_cmi: float | None, confirmation: dict | None = None) -> None:
    """The parent run's figure of each searched parameter against the results (`SEARCH.png`), over the searched
    range, with the MLL teacher's CMI (`mll_cmi`, for a teacher stage) and, once confirmed, the confirmation's row."""
    definition = spec.definition
    bounds = {name: (d.low, d.high) for name, d in strategies.distributions(spec.space).items() if hasattr(d, "low")}
    references = {TEACHER_VAL_CMI: ("the MLL teacher's CMI", mll_cmi)} if mll_cmi is not None else {}
    with tempfile.TemporaryDirectory() as scratch:
        figure = plots.search_scatter(rows, params, definition.plot_metrics, definition.log_params,
                                      definition.label_names, Path(scratch) / f"{definition.name}.png", bounds,
                                      references, confirmation)
        if figure:
            client.log_artifact(parent_id, str(figure))


def mll_val_cmi(spec: SearchSpec, splits: DataSplits, weights: bytes) -> float | None:
    """The MLL teacher's CMI on the validation split: where every trial's own teacher is compared from (the cache
    records only its accuracy)."""
    net = load_net(weights, spec.jobs.teacher.arch, splits.num_classes)
    return evaluate_split(net, splits, spec.jobs.teacher.runtime, "val").get("val_cmi")


def tie_line(best: dict, tied: list[dict], noise: ties.Noise | None, left_out: dict[str, str],
             names: dict[str, str]) -> str:
    """Whether the search can name a winner: the configurations (`tied`, the best first) its measured seed noise
    cannot tell from the `best` trial by the rule of `search.ties`, or that it measured no noise (one seed per
    configuration) and cannot tell; and the configurations kept out of the noise (`left_out`: key -> why)."""
    if noise is None:
        return ("Ties: unknown. Each configuration ran with one seed, so the search cannot say which of its top "
                "configurations lie within seed noise of each other; the confirmation's paired seeds decide that.")
    others = [tracking.config_label(row["config"], names) for row in tied[1:]]
    rule = (f"multiple comparison with the best: the set holds the truly best configuration at least "
            f"{1 - ties.ALPHA:.0%} of the time; {noise.describe()}")
    line = (f"Ties: none. The seeds tell every other configuration compared apart from the best ({rule})."
            if not others else
            f"Ties: the seeds cannot tell {', '.join(others)} from the best, {tracking.config_label(best['config'], names)} "
            f"({rule}).")
    if left_out:
        line += " Kept out of the pooled noise: " + "; ".join(
            f"{tracking.config_label(json.loads(key), names)} ({why})" for key, why in left_out.items()) + "."
    return line


def log_teacher_pictures(spec: SearchSpec, client, parent_id: str, splits: DataSplits, mll_weights: bytes,
                         others: dict[str, bytes], folder: Path, suffix: str = "", part: str = "val") -> None:
    """The MLL teacher's reliability diagram and Eigen-CAM maps beside those of `others` (label -> weights),
    on the parent run."""
    arch, classes = spec.jobs.teacher.arch, splits.num_classes
    nets = {label: load_net(weights, arch, classes) for label, weights in {"MLL teacher": mll_weights, **others}.items()}
    for path in plots.teacher_pictures(spec.jobs.teacher.runtime, splits, nets, spec.seed, folder, suffix, part):
        client.log_artifact(parent_id, str(path))


def write_report(spec: SearchSpec, state: SearchState, teacher: teachers.Teacher, experiment_id: str,
                 splits: DataSplits) -> str:
    """summary.md / summary.json, the parent run's metrics, tags and figures; the terminal's summary of them."""
    client = tracking.client(spec.tracking_uri)
    parent_id = state.parent_run_id
    analysis = report.confirmation_analysis(state.confirm, spec.confirm.margin) if state.confirm.candidates else None
    text = summary_text(spec, state.outcome, teacher, analysis)
    summary = {
        "search": spec.definition.name, "name": spec.name, "argv": list(spec.argv),
        "best": state.outcome.best, "test": state.outcome.test, "confirmation": analysis,
        "teacher": teacher.describe(), "trials": state.outcome.trials,
        "mlflow": {"tracking_uri": spec.tracking_uri, "experiment": spec.experiment_name, "parent_run_id": parent_id},
        "optuna": {"storage": tuning.optuna_storage_url(spec), "study": spec.name},
    }
    links = {"trials_view": ("the trials, best first", trials_view(spec, experiment_id, parent_id,
                                                                   state.outcome.params))}
    max_t = spec.budget.max_t
    ran_all = mlflow_ui.trial_run_ids(client, experiment_id, parent_id, max_t)
    if len(ran_all) > 1:  # a stopped trial's last value is an earlier epoch's: it stays in the trials view only
        stopped = len(state.outcome.trials) - len(ran_all)
        links["compare"] = (f"the compare view of the {len(ran_all)} trials that ran all {max_t} student epochs: "
                            f"parameters against {METRIC}" + (f" (the {stopped} others stopped earlier: see the "
                                                              f"trials)" if stopped else ""),
                            mlflow_ui.compare_url(spec.ui_url, experiment_id, ran_all))
    if analysis:
        key = mlflow_ui.share_confirm_view(client, experiment_id, parent_id, spec.name)
        links["confirmation_view"] = (f"the confirmation runs, grouped by configuration, by {report.CONFIRM_METRIC}",
                                      mlflow_ui.view_url(spec.ui_url, experiment_id, key))
    summary["mlflow"].update({name: url for name, (_, url) in links.items()})
    text += "\n" + links_markdown(spec, list(links.values()))
    paths = [*report.write_summary(spec.experiment_dir, summary, text), record_curves(spec, state)[0]]
    with tempfile.TemporaryDirectory() as scratch:
        figure = plots.confirmation_figure(analysis, Path(scratch) / "confirmation.png") if analysis else None
        if analysis:  # the search's figure again, with what the confirmation measured
            log_search_figure(spec, client, parent_id, state.outcome.trials, state.outcome.params,
                              state.outcome.mll_val_cmi, analysis)
        for path in [*paths, *([figure] if figure else [])]:
            client.log_artifact(parent_id, str(path))
        confirmed = confirm.confirmed_teachers(spec, state.confirm)
        if spec.definition.teacher_stage and confirmed:  # every confirmed configuration's teacher, seed 1
            part = "test" if state.confirm.data == "full" else "val"  # images none of these teachers trained on
            seed = state.confirm.seeds[0]  # the pictures show each configuration's teacher of the first seed
            log_teacher_pictures(spec, client, parent_id, splits, teacher.weights,
                                 {f"{label} (seed {seed})": path.read_bytes() for label, path in confirmed.items()},
                                 Path(scratch), "_confirmed", part)
    if analysis:
        metrics, tags = report.confirmation_metrics(analysis)
        tracking.log_metrics(client, parent_id, metrics)
        for key, value in tags.items():
            client.set_tag(parent_id, key, value[:5000])
    tracking.describe_run(client, parent_id, report.run_description(text, analysis))
    tracking.end_stages(spec.tracking_uri, experiment_id, parent_id)
    client.set_terminated(parent_id, "FINISHED")
    return terminal_summary(spec, state.outcome, teacher.val_acc, analysis, paths[1], list(links.values()))


def terminal_summary(spec: SearchSpec, outcome: Outcome, reference_acc: float | None, analysis: dict | None,
                     summary: Path, links: list[tuple[str, str]]) -> str:
    """What the terminal ends on: the trials table (the best `TERMINAL_TRIALS`), the best trial and its ties, the
    confirmation table and its verdicts, where the summary is, and the MLflow links."""
    rows, best, names = outcome.trials, outcome.best, spec.definition.label_names
    lines = ["", report.table(rows[:TERMINAL_TRIALS], outcome.params, spec.definition.columns)]
    if len(rows) > TERMINAL_TRIALS:
        lines.append(f"... and {len(rows) - TERMINAL_TRIALS} more trials in {summary}")
    if any(r["outcome"] == outcomes.COLLAPSED for r in rows):
        lines.append(outcomes.describe_collapse(reference_acc))
    lines += ["", f"best trial {best['trial']}: {json.dumps(best['config'], default=str)}  student val acc "
                  f"{100 * best['metrics'][METRIC]:.2f}% after {best['metrics'].get(TIME_ATTR)} epochs",
              tie_line(best, outcome.tied, noise_of(outcome), outcome.left_out, names)]
    if outcome.test:
        lines.append("test (once, best trial): " + "  ".join(shown(k, v) for k, v in outcome.test.items()))
    if analysis:
        lines += ["", "confirmation", report.confirmation_text(analysis, markdown=False)]
    lines += ["", f"summary: {summary}", links_text("in MLflow", spec, links)]
    return "\n".join(lines)


def links_text(title: str, spec: SearchSpec, links: list[tuple[str, str]]) -> str:
    """Links to print, each after what it shows, after the command that serves them when no tracking server does."""
    hint = mlflow_ui.open_ui_hint(spec.tracking_uri, spec.ui_url)
    return "\n".join([f"{title}" + (f" (serve them with: {hint})" if hint else "") + ":",
                      *(f"  {what}:\n    {url}" for what, url in links)])


def links_markdown(spec: SearchSpec, links: list[tuple[str, str]]) -> str:
    """The summary's MLflow section: where to look, one click each."""
    hint = mlflow_ui.open_ui_hint(spec.tracking_uri, spec.ui_url)
    return "\n".join(["## In MLflow", "", *([f"Serve the UI with `{hint}`, then open:", ""] if hint else []),
                      *(f"- [{what}]({url})" for what, url in links), ""])


def compute_line(spec: SearchSpec, rows: list[dict]) -> str:
    """What the trials trained against running every one to the end: student epochs, and each trial's teacher-stage
    epochs where it has one (compute the search spends as much as the student's)."""
    stage = spec.stage_epochs
    used = sum(outcomes.epochs_trained(r["metrics"], stage) for r in rows)
    full = spec.budget.num_samples * (spec.budget.max_t + stage)
    per_trial = f"× ({stage} teacher + {spec.budget.max_t} student)" if stage else f"× {spec.budget.max_t} student"
    return (f"The trials trained {used} of the {full} epochs that {spec.budget.num_samples} trials {per_trial} epochs "
            f"would take ({used / full:.0%}); early stopping saved {full - used}.")


def noise_of(outcome: Outcome) -> ties.Noise | None:
    """The search's measured seed noise, as saved in its state."""
    return ties.Noise(**{**outcome.noise, "pooled": tuple(outcome.noise["pooled"])}) if outcome.noise else None


def summary_text(spec: SearchSpec, outcome: Outcome, teacher: teachers.Teacher, analysis: dict | None) -> str:
    rows, best, student = outcome.trials, outcome.best, spec.jobs.student
    counts = {name: sum(r["outcome"] == name for r in rows) for name in outcomes.OUTCOMES}
    lines = [
        f"# {spec.definition.name}: {spec.name}", "",
        (f"{student.teacher_arch} -> {student.arch} on {student.data.dataset} (few-shot {student.data.few_shot_fraction}, "
         f"zero-shot {list(student.data.zero_shot_classes) or 'none'}), {len(rows)} trials: "
         + ", ".join(f"{n} {state}" for state, n in counts.items() if n) + "."),
        f"MLL teacher: {teacher.source}"
        + (f", val acc {100 * teacher.val_acc:.2f}%." if teacher.val_acc is not None else "."), "",
        f"Best trial {best['trial']} (chosen on validation): `{json.dumps(best['config'], default=str)}`, "
        f"student val acc {100 * best['metrics'][METRIC]:.2f}%."
        + (" It is the search's first point, enqueued as the method's published values rather than found by the "
           "sampler (it competed under the same rules as every sampled trial)." if best.get("first_point") else ""),
    ]
    lines += ["", f"Strategy: {spec.strategy.label()}. " + compute_line(spec, rows)]
    finished = sum(int(r["metrics"].get(TIME_ATTR) or 0) >= spec.budget.max_t for r in rows)
    lines += fidelity.trust_lines(outcome.trust, first_rung(spec), finished)
    lines += [f"Pick rule: {outcome.pick}. " + tie_line(best, outcome.tied, noise_of(outcome), outcome.left_out,
                                                          spec.definition.label_names)]
    if outcome.test:
        lines.append("Test, evaluated once for the best trial: "
                     + ", ".join(shown(k, v) for k, v in outcome.test.items()) + ".")
    if analysis:
        lines += ["", "## Confirmation", "", report.confirmation_text(analysis)]
    lines += ["", report.TRIALS_HEADING, "", report.table(rows, outcome.params, spec.definition.columns, markdown=True),
              ""]
    if counts[outcomes.COLLAPSED]:
        lines += [outcomes.describe_collapse(teacher.val_acc) + ".", ""]
    lines += [f"Optuna: `optuna-dashboard {shlex.quote(tuning.optuna_storage_url(spec))}` (study {spec.name})", ""]
    return "\n".join(lines)


def main_for(definition: SearchDefinition):
    """The `main(argv)` of a search module, wrapped for one-line errors."""
    def main(argv: Sequence[str] | None = None) -> int:
        return run_search(definition, argv)

    return lambda argv=None: run_cli(main, argv)
