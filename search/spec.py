"""The command line, parsed and checked once into a typed `SearchSpec` that every stage reads.

Every invalid input fails here, before Ray starts or any trial runs, with one line. `--resume` and
`--confirm-only` re-read the options the search was started with; the confirmation options given
now (`--confirm-seeds`, `--confirm-top`) win, since extending the confirmation is their purpose.
"""
from __future__ import annotations

import argparse
import os
import shlex
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from distill import models
from distill.cli import ArgumentParser, add_distiller_options, check_folder
from distill.config import StudentJob
from distill.errors import UserError
from distill.runs import check_data_parallel
from distill.settings import TEACHER_OBJECTIVE_KEY, encode_distillers, flat_value, setting_key
from search import mlflow_ui, ownership, packing, picks, strategies, tracking
from search.definition import Baseline, SearchDefinition
from search.options import CONFIRM_MAX_SEEDS, PRESETS, Jobs, add_common_options, build_jobs, check_common, max_t, workers_per_trial
from search.state import CONFIRMING, DONE, STATE_FILE, SearchState
from search.strategies import Strategy
from spaces import variants
from trainables.overrides import SEED_KEY, student_job_for

EXTENDABLE = ("confirm_top", "confirm_seeds")  # options a resumed search takes from the new command line
# (--margin and --confirm-max-seeds stay as started: the race's looks were spent on them)
# Options a resume may give without contradicting the saved search: which search, where, on which cluster.
PRESENTATION = ("ui_url", "verbose")  # options that change only how results are shown: a resume takes them as given
RESUME_OPTIONS = ("resume", "confirm_only", "name", "storage_path", "address", "confirm_data", *EXTENDABLE,
                  *PRESENTATION)


@dataclass(frozen=True)
class Budget:
    """How many trials, how many at once, and ASHA's rungs (time: student epochs)."""

    num_samples: int
    max_concurrent_trials: int | None  # None until `search.packing` fills it in, once Ray says what it has
    max_t: int
    max_failures: int


@dataclass(frozen=True)
class ConfirmSpec:
    """The confirmation stage: `top` configurations plus the baselines, `seeds` paired seeds each, then a race up to
    `max_seeds`; `margin` is δ as a fraction of accuracy."""

    top: int
    seeds: int
    data: str  # "full" (train + validation) or "train"
    max_seeds: int
    margin: float

    @property
    def enabled(self) -> bool:
        return self.seeds > 0


@dataclass(frozen=True)
class SearchSpec:
    """A checked search, ready to start: what it trains, how it samples, where it lives, how it is tracked."""

    definition: SearchDefinition
    name: str
    argv: tuple[str, ...]
    options: dict  # every option as used, for the parent run's params
    storage: Path
    jobs: Jobs
    space: object
    points: list[dict]
    budget: Budget
    strategy: Strategy
    baselines: tuple[Baseline, ...]  # what the confirmation compares against, for these options
    confirm: ConfirmSpec
    resources: dict[str, float | None]  # cpu, gpu (None until `search.packing` fills it in), workers
    seed: int
    teacher_checkpoint: str | None
    pretrained_teacher: bool
    address: str | None
    tracking_uri: str
    tracking_uri_option: str | None
    experiment_name: str
    ui_url: str  # where the MLflow UI serves this search's runs (the tracking server's own address, or --ui-url)
    resume: bool
    confirm_only: bool
    state: SearchState | None  # the saved record of a resumed search
    verbose: bool = False  # Ray's tables and the workers' lines on the terminal too (they always go to the log)

    @property
    def experiment_dir(self) -> Path:
        return self.storage / self.name

    @property
    def stage_epochs(self) -> int:
        """The epochs of each trial's own teacher stage (0 for a search without one)."""
        return self.jobs.stage.job.recipe().epochs if self.jobs.stage is not None else 0

    def place(self, trainable, **inputs):
        """`trainable` with its fixed inputs, ready for a Tuner: resources, and several workers when asked."""
        return packing.placed(trainable, self.resources, self.storage, self.budget.max_failures, **inputs)

    def answer(self, rows: list[dict], params: list[str]) -> picks.Answer:
        """The search's answer from its trials by its pick rule (`--pick`), with the configurations tied with it."""
        return picks.pick(rows, params, frozenset(self.definition.log_params), self.strategy.pick,
                          self.seed)

    def resume_command(self) -> str:
        return continue_command(self.definition.invocation, "--resume", self.storage, self.name)


def continue_command(invocation: str, how: str, storage: Path, name: str) -> str:
    """The command that continues a search (`how`: --resume or --confirm-only), quoted for a shell."""
    return f"{invocation} {how} --storage-path {shlex.quote(str(storage))} --name {shlex.quote(name)}"


def build_parser(definition: SearchDefinition, defaults: bool = True) -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=definition.invocation, description=definition.description)
    add_common_options(parser)
    add_distiller_options(parser, definition.distillers)
    definition.add_options(parser)
    if not defaults:
        for action in parser._actions:
            action.default = argparse.SUPPRESS
    return parser


def parse(definition: SearchDefinition, argv: Sequence[str]) -> argparse.Namespace:
    """Options with the chosen preset's values as defaults, so explicit options still win."""
    parser = build_parser(definition)
    known, _ = parser.parse_known_args(argv)
    if known.preset:
        parser.set_defaults(**PRESETS[known.preset])
    return parser.parse_args(argv)


def explicit(definition: SearchDefinition, argv: Sequence[str]) -> dict:
    """Only the options `argv` spells out (no defaults, no preset)."""
    return vars(build_parser(definition, defaults=False).parse_args(argv))


def latest_search(storage: Path, search: str) -> str:
    """The most recently started search of this kind under `storage`, for a bare --resume."""
    found = sorted(storage.glob(f"{search}-*/{STATE_FILE}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(f"nothing to resume: no {search} search under {storage}")
    return found[-1].parent.name


def resumed(definition: SearchDefinition, args: argparse.Namespace, given: dict, storage: Path):
    """(name, saved argv, options, state) of the search a --resume or --confirm-only continues."""
    name = args.name or latest_search(storage, definition.name)
    check_search_name(name)
    how = "--confirm-only" if args.confirm_only else "--resume"
    ownership.refuse_if_running(storage / name, continue_command(definition.invocation, how, storage, name))
    state = SearchState.read(storage / name)
    if state is None:
        raise UserError(f"nothing to resume: {storage / name} holds no kdtune search")
    if state.search and state.search != definition.name:
        raise UserError(f"{storage / name} is a search of `{state.command}`, not of `{definition.invocation}`: "
                        f"continue it with `{continue_command(state.command, how, storage, name)}`")
    if args.confirm_only and state.stage not in (CONFIRMING, DONE):
        raise UserError(f"cannot confirm {name}: its search trials have not finished; continue it with "
                        f"--resume first")
    saved = parse(definition, state.argv)
    for option, value in given.items():
        if option not in RESUME_OPTIONS and value != getattr(saved, option):
            flag = "--" + option.replace("_", "-")
            raise UserError(f"{flag} {shown(value)} contradicts the search {name} was started with "
                            f"({shown(getattr(saved, option))}); a resumed search keeps its options (more seeds: "
                            f"--confirm-only --confirm-seeds N)")
    planned = state.confirm.data
    if planned and given.get("confirm_data", planned) != planned:
        raise UserError(f"--confirm-data {given['confirm_data']} contradicts the confirmation {name} already "
                        f"planned on {planned} data; start a new search to confirm on other data")
    for option in EXTENDABLE + ("confirm_data",) + PRESENTATION:
        if option in given:
            setattr(saved, option, given[option])
    # Found here, whatever folder it was started from; its runs live where it logged them.
    saved.resume, saved.confirm_only, saved.storage_path = True, args.confirm_only, str(storage)
    saved.verbose = given.get("verbose", False)  # how this driver shows its progress, whatever the first one did
    saved.tracking_uri = state.tracking_uri_option
    if saved.confirm_only and saved.confirm_seeds == 0:
        raise UserError("--confirm-only with --confirm-seeds 0 has nothing to run")
    return name, state.argv, saved, state


def shown(value: object) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def check_resources(args: argparse.Namespace) -> None:
    """A trial must fit the local machine, or it would wait forever as PENDING (a cluster may grow: not checked)."""
    if args.address is not None:
        return
    cpus = os.cpu_count() or 1
    if args.cpus_per_trial > cpus:
        raise UserError(f"--cpus-per-trial {args.cpus_per_trial:g} is more than this machine's {cpus} CPUs: "
                        "no trial could start")
    workers = workers_per_trial(args)
    if args.gpus_per_trial is None and workers > 1 and 0 < torch.cuda.device_count() < workers:
        raise UserError(f"--workers-per-trial {workers} takes one GPU each, more than this machine's "
                        f"{torch.cuda.device_count()} GPUs: give fewer workers, or --gpus-per-trial 0 for CPU workers")
    if not args.gpus_per_trial:  # not given (packed onto whatever GPUs Ray sees), or 0
        return
    if not torch.cuda.is_available():
        raise UserError(f"--gpus-per-trial {args.gpus_per_trial} asks for GPUs, but this machine has none "
                        "(or CUDA is not visible): use --gpus-per-trial 0, or --address for a GPU cluster")
    if args.gpus_per_trial > torch.cuda.device_count():
        raise UserError(f"--gpus-per-trial {args.gpus_per_trial:g} is more than this machine's "
                        f"{torch.cuda.device_count()} GPUs: no trial could start")


def check_data_parallel_jobs(jobs: Jobs, workers: int) -> None:
    """Every stage's batch splits evenly over the workers, and every distiller can train data parallel."""
    if workers == 1:
        return
    for job in jobs.all():
        batch = job.recipe().batch_size
        if batch % workers:
            raise UserError(f"--workers-per-trial {workers}: the batch size {batch} does not split evenly over the "
                            f"workers; give --batch-size a multiple of {workers}")
    for name in jobs.student.distillers:
        check_data_parallel(name, workers)


NAME_BYTES = 200  # of a file system's 255 per folder name, leaving room for the files named after a search


def check_search_name(name: str) -> None:
    """A search's name becomes a folder under --storage-path (and the Optuna study's name): one plain path
    component, so it can never point outside the storage path or hide itself."""
    if (not name.strip() or name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name
            or any(ord(c) < 32 for c in name) or len(name.encode()) > NAME_BYTES):
        raise UserError(f"--name {name!r} is not a usable search name: it becomes a folder under --storage-path, so "
                        "give one plain folder name (no '/', '\\' or control characters, not starting with '.', "
                        f"at most {NAME_BYTES} bytes in UTF-8: the file system counts bytes)")


def search_strategy(definition: SearchDefinition, args: argparse.Namespace, given: dict):
    """(strategy, space, first points, number of trials), checked. A grid fixes the trials: each of its points once
    (with each of --grid-seeds seeds), no first points."""
    space, points = definition.space(args), definition.points(args)
    grid = {}
    if args.sampler == "grid":
        if len({frozenset(v) for v in variants.categorical_variants(space)}) > 1:
            raise UserError(f"--sampler grid: {definition.invocation}'s space has conditional parameters (a choice "
                            "decides which others exist), which a grid cannot cross; use another sampler")
        if not args.grid and not args.grid_values:
            raise UserError("--sampler grid needs its values: --grid N (N per parameter) or --grid-values")
        grid = strategies.grid_values(space, args.grid, strategies.parse_grid_values(args.grid_values))
        if args.grid_seeds > 1:
            grid[SEED_KEY] = tuple(args.seed + i for i in range(args.grid_seeds))
        size = strategies.grid_size(grid)
        if "num_samples" in given and args.num_samples != size:
            axes = " × ".join(f"{len(v)} {name}" for name, v in grid.items())
            raise UserError(f"--sampler grid has {size} points ({axes}) but --num-samples is {args.num_samples}: "
                            f"leave --num-samples out (the grid sets it) or change the grid")
        strategy = Strategy(args.sampler, args.scheduler, args.grace_period, args.reduction_factor, args.asha_window,
                            grid, args.pick).check(max_t(args))
        return strategy, strategies.space_for(strategy, space), [], size
    if args.grid or args.grid_values or args.grid_seeds > 1:
        raise UserError("--grid, --grid-values and --grid-seeds describe a grid: add --sampler grid")
    strategy = Strategy(args.sampler, args.scheduler, args.grace_period, args.reduction_factor, args.asha_window,
                        pick=args.pick)
    return strategy.check(max_t(args)), space, points, args.num_samples


def check_settings_apply(space, student: StudentJob, given: dict) -> None:
    """A `--<distiller>-<field>` option that the space replaces in every trial would be recorded as the search's
    setting yet never used: refused, naming the option."""
    trials = variants.categorical_variants(space)
    for key in given:
        name, dot, field = key.partition(".")
        config = student.distillers.get(name) if dot else None
        if config is None or getattr(config, field) == getattr(type(config)(), field):
            continue
        default = replace(student, distillers={**student.distillers, name: replace(config, **{field: getattr(
            type(config)(), field)})})
        used = [(student_job_for(job, trial).distillers.get(name) for job in (student, default)) for trial in trials]
        if all(getattr(a, field, None) == getattr(b, field, None) for a, b in used):
            raise UserError(f"--{name}-{field.replace('_', '-')} has no effect: this search samples {name}'s "
                            f"{field} in every trial; leave the option out")


def check_ui_url(url: str) -> None:
    address = urllib.parse.urlsplit(url)
    if address.scheme not in ("http", "https") or not address.hostname:
        raise UserError(f"--ui-url {url!r} is not the address of a web UI: give one such as http://127.0.0.1:5000")


def check_experiment_name(name: str | None) -> None:
    if name is not None and (not name.strip() or "/" in name):
        raise UserError(f"--experiment-name {name!r} is not a usable MLflow experiment name: give a non-empty "
                        "name without '/'")


def used_options(args: argparse.Namespace, jobs: Jobs, **resolved: object) -> dict:
    """Every option as the search uses it, for the parent run's params: paths absolute, defaults filled in, every
    setting of the student's distillers as its template holds it (`crd.nce_k`, ..., `ce_weight`), and the teacher
    stage's objective with its settings (`teacher_objective`, `mcmi.centroid_ema`, ...)."""
    student = jobs.student
    options = {k: v for k, v in vars(args).items() if k not in ("resume", "confirm_only", "verbose") and "." not in k}
    if args.teacher_checkpoint:
        options["teacher_checkpoint"] = str(Path(args.teacher_checkpoint).expanduser().resolve())
    options.update({setting_key(name, field): flat_value(value) for name, config in student.distillers.items()
                    for field, value in vars(config).items()})
    options.update(distiller=encode_distillers(list(student.distillers)), ce_weight=student.ce())
    if jobs.stage is not None:
        objective = jobs.stage.job.objective
        options[TEACHER_OBJECTIVE_KEY] = objective.name()
        options.update({setting_key(objective.name(), field): flat_value(value)
                        for field, value in vars(objective).items()})
    return {**options, **resolved}


URI_SPECIAL = "?#%"  # what a SQLite URI would read as its query, fragment or escapes


def storage_folder(given: str) -> Path:
    """--storage-path, absolute and checked: a folder that is (or can be) written, reached without a symlink loop,
    and without the characters a SQLite URI must quote, which MLflow 3.17 does not unquote where it creates the
    store's folder (it would make a stray folder outside the storage path)."""
    try:
        storage = Path(given).expanduser().resolve()
    except (RuntimeError, OSError) as err:  # a symlink loop (RuntimeError before Python 3.13)
        raise UserError(f"--storage-path {given} cannot be resolved ({err})") from None
    special = sorted({c for c in str(storage) if c in URI_SPECIAL})
    if special:
        raise UserError(f"--storage-path {storage} contains {' '.join(special)}, which MLflow's SQLite store cannot "
                        "take in its path; choose a folder without them (spaces and other letters are fine)")
    check_folder(storage, "--storage-path")
    return storage


def build_spec(definition: SearchDefinition, argv: Sequence[str]) -> SearchSpec:
    """Parse and check everything a search needs, without starting anything."""
    argv = list(argv)
    args = parse(definition, argv)
    typed = explicit(definition, argv)  # the options this command line spells out, before a resume's saved ones
    storage = storage_folder(args.storage_path)
    state = None
    if args.resume or args.confirm_only:
        name, argv, args, state = resumed(definition, args, typed, storage)
    else:
        name = args.name or f"{definition.name}-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
        check_search_name(name)
        if (storage / name).exists():
            ownership.refuse_if_running(storage / name, continue_command(definition.invocation, "--resume", storage,
                                                                         name))
            raise UserError(f"{storage / name} exists: pass --resume to continue that search, or another --name")
    if "confirm_max_seeds" not in typed and args.confirm_max_seeds is not None:
        # M from a preset or the search's start follows a larger N (--confirm-only --confirm-seeds N extends it)
        args.confirm_max_seeds = max(args.confirm_max_seeds, args.confirm_seeds)
    check_common(args)
    most_seeds = max(args.confirm_max_seeds or CONFIRM_MAX_SEEDS, args.confirm_seeds)
    missing = [name for name in definition.searched if name not in args.distiller]
    if missing:
        raise UserError(f"--distiller {' '.join(args.distiller)} leaves out {', '.join(missing)}, whose settings "
                        f"this search samples; add it (e.g. --distiller {' '.join([*missing, *args.distiller])})")
    for arch in (args.teacher, args.student):
        models.MODELS.get(arch)
    strategy, space, points, num_samples = search_strategy(definition, args, explicit(definition, argv))
    if args.teacher_checkpoint and not Path(args.teacher_checkpoint).is_file():
        raise UserError(f"teacher checkpoint not found: {args.teacher_checkpoint}")
    check_resources(args)
    check_experiment_name(args.experiment_name)
    check_ui_url(args.ui_url)
    tracking_uri = tracking.resolve_tracking_uri(args.tracking_uri, storage)
    tracking.check_reachable(tracking_uri)
    experiment_name = args.experiment_name or f"kdtune-{definition.name}"
    jobs = build_jobs(args, definition.teacher_objective)
    check_settings_apply(space, jobs.student, explicit(definition, argv))
    workers = workers_per_trial(args)
    check_data_parallel_jobs(jobs, workers)
    return SearchSpec(
        definition=definition, name=name, argv=tuple(argv),
        options=used_options(args, jobs, name=name, storage_path=str(storage), data_dir=jobs.student.data.data_dir,
                             tracking_uri=tracking_uri, experiment_name=experiment_name, max_t=max_t(args),
                             address=args.address or "local (a new Ray instance on this machine)",
                             confirm_max_seeds=most_seeds),
        storage=storage, jobs=jobs, space=space, points=points,
        budget=Budget(num_samples, args.max_concurrent_trials, max_t(args), args.max_failures), strategy=strategy,
        baselines=definition.baselines(args),
        confirm=ConfirmSpec(args.confirm_top, args.confirm_seeds, args.confirm_data,
                            most_seeds, args.margin / 100),
        resources={"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial, "workers": workers}, seed=args.seed,
        teacher_checkpoint=args.teacher_checkpoint, pretrained_teacher=args.pretrained_teacher, address=args.address,
        tracking_uri=tracking_uri,
        tracking_uri_option=args.tracking_uri,
        experiment_name=experiment_name, ui_url=mlflow_ui.ui_base(tracking_uri, args.ui_url),
        resume=args.resume, confirm_only=args.confirm_only, state=state, verbose=args.verbose,
    )
