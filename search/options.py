"""The options every search shares (named in Ray Tune's vocabulary), presets, and the typed jobs they build."""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

from distill.cli import add_compile_option, distiller_configs
from distill.config import (
    DataConfig,
    Job,
    OptimConfig,
    RuntimeConfig,
    StudentJob,
    TeacherJob,
    TeacherStage,
    fine_tune_recipe,
    mll_recipe,
    overridden_recipe,
)
from distill.data import DATASET_HELP
from distill.errors import UserError
from distill.teachers import TEACHER_OBJECTIVES
from distill.models.imagenet import check_pretrainable
from search.packing import CPU_CONCURRENT_TRIALS, SMALL_IMAGE_GPU_SHARE, SMALL_IMAGE_SIDE
from trainables.metrics import STUDENT_EPOCH, STUDENT_VAL_ACC

METRIC, MODE = STUDENT_VAL_ACC, "max"  # every search maximises the student's validation accuracy
TIME_ATTR = STUDENT_EPOCH  # ASHA judges the student stage only

# A complete small search on 2 CPU cores, no GPU, no download: bundled digits, small nets, few epochs.
PRESETS: dict[str, dict[str, object]] = {
    "digits": dict(
        dataset="digits", teacher="resnet14", student="resnet8", few_shot=0.5, teacher_epochs=8,
        stage_epochs=3, epochs=15, batch_size=32, schedule="cosine", num_samples=6, max_concurrent_trials=2,
        cpus_per_trial=1, confirm_top=3, confirm_seeds=3, confirm_max_seeds=3,
    ),
}
DEFAULT_UI_URL = "http://127.0.0.1:5000"  # where `mlflow ui` serves a database store unless told otherwise
CONFIRM_DATA = ("full", "train")  # what confirmation runs train on: train + validation, or train alone
CONFIRM_MAX_SEEDS = 8  # the race's most paired seeds per configuration (BENCHMARKS.md: what it costs and decides)
MAX_SEEDS = 100  # more seeds per configuration than this is a typo, not a plan
MARGIN_POINTS = 1.0  # δ, in accuracy points: a difference smaller than this is "equivalent"


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Data, scenario, nets, trial budget and resources, ASHA, storage, tracking and cluster options."""
    parser.add_argument("--preset", choices=sorted(PRESETS), help="defaults for a complete small search "
                        "(digits: 2 CPU cores, no GPU, no download, a few minutes); explicit options win")
    defaults, recipe = DataConfig(), OptimConfig()
    data = parser.add_argument_group("data and scenario")
    data.add_argument("--dataset", default=defaults.dataset, help=DATASET_HELP)
    data.add_argument("--data-dir", default=defaults.data_dir, help="folder holding cifar-100-python/ etc.")
    data.add_argument("--download", action="store_true", help="fetch the dataset (through torchvision) if missing")
    data.add_argument("--no-verify", action="store_true", help="skip the md5 check of the dataset files (your own "
                      "re-pickled or relabelled CIFAR-format data)")
    data.add_argument("--val-size", type=int, help="validation images held out of train for every search "
                      "decision (default: 5000 CIFAR, 180 digits)")
    data.add_argument("--few-shot", type=float, default=defaults.few_shot_fraction, metavar="FRACTION",
                      help="fraction of train the student sees (1: the full-data scenario)")
    data.add_argument("--few-shot-mode", choices=["stratified", "first"], default=defaults.few_shot_mode,
                      help="how the few-shot share is drawn: a stratified sample, or the first N images (the MCMI "
                      "paper's protocol)")
    data.add_argument("--zero-shot-classes", type=int, nargs="*", default=[], metavar="CLASS",
                      help="classes removed from the student's data; the test report gives their accuracy")
    nets = parser.add_argument_group("networks and epochs (defaults: the published recipes)")
    nets.add_argument("--teacher", default=TeacherJob.arch, help="teacher architecture (python -m distill.models list)")
    nets.add_argument("--student", default=StudentJob.arch, help="student architecture")
    nets.add_argument("--teacher-checkpoint", help="bring your own MLL teacher (RepDistiller .pth) instead of "
                      "the cached or freshly trained one")
    nets.add_argument("--pretrained-teacher", action="store_true",
                      help="start from torchvision's ImageNet weights of --teacher (a tv_ net on imagenet); "
                      "downloaded into torch's hub cache the first time, and only when this is given")
    nets.add_argument("--teacher-epochs", type=int,
                      help=f"epochs of the MLL teacher when it must be trained ({recipe.epochs})")
    nets.add_argument("--epochs", type=int, help=f"student epochs per trial ({recipe.epochs})")
    nets.add_argument("--batch-size", type=int, help=f"batch size of every stage ({recipe.batch_size})")
    nets.add_argument("--schedule", choices=["step", "cosine"],
                      help=f"lr schedule of teacher and student ({recipe.schedule})")
    trials = parser.add_argument_group("trials and resources")
    trials.add_argument("--num-samples", type=int, default=16, help="number of trials")
    trials.add_argument("--max-concurrent-trials", type=int,
                        help=f"default: as many as the GPUs hold when trials use GPUs, else {CPU_CONCURRENT_TRIALS}")
    trials.add_argument("--gpus-per-trial", type=float,
                        help=f"e.g. 0.25: four trials share a GPU (default: {SMALL_IMAGE_GPU_SHARE:g} for images up to "
                        f"{SMALL_IMAGE_SIDE} pixels a side and 1 above, when GPUs are visible; else 0)")
    trials.add_argument("--workers-per-trial", type=int,
                        help="data-parallel workers per trial, each a Ray Train worker with one GPU (DDP; gloo on CPUs); "
                        "the recipe's batch is split over them (default: --gpus-per-trial when it is above 1, else 1)")
    trials.add_argument("--cpus-per-trial", type=float, default=1.0,
                        help="CPUs per trial, split over its workers (default: 1)")
    add_compile_option(trials)
    trials.add_argument("--max-failures", type=int, default=2, help="retries of a trial whose worker died")
    add_strategy_options(parser)
    store = parser.add_argument_group("storage, tracking and cluster")
    store.add_argument("--seed", type=int, default=0, help="seeds the split, every trial's training and the sampler")
    store.add_argument("--storage-path", default=os.environ.get("KDTUNE_STORAGE_PATH") or "./results",
                       help="results folder, shared by every node on a cluster: Ray Tune trials, the Optuna (and default "
                       "MLflow) SQLite files, cached teachers, summaries (default: $KDTUNE_STORAGE_PATH, else ./results)")
    store.add_argument("--name", help="search name (default: SEARCH-DATASET-TIME); --resume picks the latest")
    store.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI") or None,
                       help="MLflow tracking URI, e.g. http://127.0.0.1:5000 (default: $MLFLOW_TRACKING_URI, else "
                       "sqlite under --storage-path)")
    store.add_argument("--experiment-name", help="MLflow experiment (default: kdtune-SEARCH)")
    store.add_argument("--ui-url", default=DEFAULT_UI_URL, metavar="URL",
                       help="where you serve `mlflow ui` for this store: the address of every printed link and of each "
                       "Optuna trial's `mlflow_run_url` (a tracking server serves its own UI and its address is used)")
    store.add_argument("--address", default=os.environ.get("RAY_ADDRESS") or None,
                       help="existing Ray cluster, e.g. auto (default: $RAY_ADDRESS, which a Ray job sets; else a new "
                       "local Ray)")
    store.add_argument("--resume", action="store_true",
                       help="continue an interrupted search (Tuner.restore) with its saved options")
    store.add_argument("--verbose", action="store_true",
                       help="show Ray Tune's status and result tables and the workers' lines on the terminal too "
                       "(they always go to the search's search.log)")
    confirm = parser.add_argument_group(
        "confirmation (after the search: the top configurations and the baselines re-trained over paired seeds, "
        "each tested once)")
    confirm.add_argument("--confirm-top", type=int, default=3, metavar="K",
                         help="distinct configurations to confirm, best validation accuracy first (default: 3)")
    confirm.add_argument("--confirm-seeds", type=int, default=3, metavar="N",
                         help="seeds per configuration and baseline; 0 skips the stage and tests the best trial "
                         "once instead (default: 3)")
    confirm.add_argument("--confirm-max-seeds", type=int, metavar="M",
                         help="race: after the first N seeds, give the configurations still undecided against the "
                         f"best one more paired seed a round, up to M (default: {CONFIRM_MAX_SEEDS}, or N when that "
                         "is more; M = N: no race)")
    confirm.add_argument("--margin", type=float, default=MARGIN_POINTS, metavar="POINTS",
                         help="δ, in accuracy points: configurations whose paired difference lies within ±δ are "
                         f"equivalent (default: {MARGIN_POINTS:g})")
    confirm.add_argument("--confirm-data", choices=CONFIRM_DATA, default="full",
                         help="full: train on train + validation (tuning is over) and report test accuracy; "
                         "train: keep the validation split out and report validation accuracy too (default: full)")
    confirm.add_argument("--confirm-only", action="store_true",
                         help="run or extend the confirmation stage of a search whose trials finished (the latest, "
                         "or --name), e.g. with more --confirm-seeds; implies --resume")


def add_strategy_options(parser: argparse.ArgumentParser) -> None:
    """The sampler, the scheduler (time: student epochs) and their options; defaults from `search.strategies`."""
    from search.picks import PICKS
    from search.strategies import SAMPLERS, SCHEDULERS, Strategy

    default = Strategy()
    group = parser.add_argument_group("search strategy (time: student epochs)")
    group.add_argument("--sampler", choices=SAMPLERS.names(), default=default.sampler,
                       help=f"how Optuna picks each configuration (default: {default.sampler}); gp needs "
                       "--scheduler none; grid runs every combination of --grid or --grid-values once")
    group.add_argument("--scheduler", choices=SCHEDULERS.names(), default=default.scheduler,
                       help=f"asha stops weak trials early; none runs every trial to --max-t (default: "
                       f"{default.scheduler})")
    group.add_argument("--max-t", type=int, help="student epochs a trial may run (default: --epochs)")
    group.add_argument("--grace-period", type=int, default=default.grace_period,
                       help="student epochs before ASHA may stop a trial (default: half of --max-t, e.g. 120 of "
                       "CIFAR's 240; the best rule measured, see BENCHMARKS.md)")
    group.add_argument("--reduction-factor", type=float, default=default.reduction_factor,
                       help=f"ASHA keeps the best 1/FACTOR of the trials at each rung (default: "
                       f"{default.reduction_factor:g})")
    group.add_argument("--asha-window", type=int, default=default.window, metavar="K",
                       help=f"ASHA compares the mean of a trial's last K validation epochs, not one noisy epoch "
                       f"(default: {default.window})")
    group.add_argument("--pick", choices=PICKS.names(), default=default.pick,
                       help="how the trials that ran to --max-t are ranked into the answer: last, by their final "
                       "validation accuracy (a mean over seeds where a configuration has several); model, by a "
                       f"Gaussian process's mean over them (default: {default.pick})")
    group.add_argument("--grid", type=int, metavar="N", help="with --sampler grid: N values per searched "
                       "parameter (log-spaced on a log scale; every choice of a categorical one)")
    group.add_argument("--grid-values", action="append", default=[], metavar="PARAM=V1,V2,...",
                       help="with --sampler grid: these values of one parameter (repeatable), e.g. mcmi.lam=0,0.05,0.1")
    group.add_argument("--grid-seeds", type=int, default=1, metavar="S",
                       help="with --sampler grid: run every grid point with S seeds (--seed, --seed + 1, ...): the "
                       "recorded grid that search.replay scores strategies against (default: 1)")


def workers_per_trial(args: argparse.Namespace) -> int:
    """The data-parallel workers of each trial: as given, else one per GPU of a multi-GPU trial, else one."""
    if args.workers_per_trial is not None:
        return args.workers_per_trial
    return int(args.gpus_per_trial) if args.gpus_per_trial and args.gpus_per_trial > 1 else 1


def check_workers(args: argparse.Namespace) -> None:
    """Each worker of a multi-worker trial holds one whole GPU (NCCL cannot put two ranks on one), or none."""
    workers, gpus = args.workers_per_trial, args.gpus_per_trial
    if workers is not None and workers < 1:
        raise UserError(f"--workers-per-trial must be positive, got {workers}")
    if workers is not None and workers > 1 and gpus and gpus != workers:
        raise UserError(f"--workers-per-trial {workers} with --gpus-per-trial {gpus:g}: each worker takes one whole "
                        f"GPU, so give --gpus-per-trial {workers} (or 0 for CPU workers)")
    if workers == 1 and gpus and gpus > 1:
        raise UserError(f"--gpus-per-trial {gpus:g} needs {int(gpus)} workers, one per GPU: leave out "
                        "--workers-per-trial or give it the same number")
    if workers_per_trial(args) > 1 and args.compile != "off":
        raise UserError(f"--compile {args.compile} with {workers_per_trial(args)} workers per trial: the compiled "
                        "step has not been validated under DDP yet; leave out --compile for multi-worker trials")


@dataclass(frozen=True)
class Jobs:
    """The fixed job templates of a search; each trial applies its sampled config on top."""

    teacher: TeacherJob  # the search's MLL teacher (cached, trained once, or brought)
    stage: TeacherStage | None  # the teacher each trial trains before its student; None: trials distil from `teacher`
    student: StudentJob

    def all(self) -> tuple[Job, ...]:
        return (self.teacher, *((self.stage.job,) if self.stage else ()), self.student)


def check_common(args: argparse.Namespace) -> None:
    """Numbers that cannot describe a search fail here, before anything starts."""
    positive = {"--num-samples": args.num_samples, "--max-concurrent-trials": args.max_concurrent_trials,
                "--teacher-epochs": args.teacher_epochs, "--grid": args.grid, "--grid-seeds": args.grid_seeds,
                "--epochs": args.epochs,
                "--stage-epochs": getattr(args, "stage_epochs", None), "--batch-size": args.batch_size,
                "--max-t": args.max_t,
                "--cpus-per-trial": args.cpus_per_trial}
    for flag, value in positive.items():
        if value is not None and value <= 0:
            raise UserError(f"{flag} must be positive, got {value}")
    if args.gpus_per_trial is not None and args.gpus_per_trial < 0:
        raise UserError(f"--gpus-per-trial must not be negative, got {args.gpus_per_trial}")
    if args.gpus_per_trial is not None and args.gpus_per_trial > 1 and args.gpus_per_trial != int(args.gpus_per_trial):
        raise UserError(f"--gpus-per-trial above 1 must be a whole number, got {args.gpus_per_trial}")
    check_workers(args)
    if args.pretrained_teacher and args.teacher_checkpoint:
        raise UserError("--pretrained-teacher and --teacher-checkpoint both choose the teacher: give one")
    if args.pretrained_teacher:
        check_pretrainable(args.teacher)
    if not 0 < args.few_shot <= 1:
        raise UserError(f"--few-shot must be a fraction in (0, 1], got {args.few_shot}")
    if args.max_failures < 0:
        raise UserError(f"--max-failures must not be negative, got {args.max_failures}")
    epochs = student_job(args).recipe().epochs
    if args.max_t is not None and args.max_t > epochs:
        raise UserError(f"--max-t {args.max_t} exceeds the student's {epochs} epochs: no trial could reach it")
    if args.confirm_seeds < 0:
        raise UserError(f"--confirm-seeds must not be negative, got {args.confirm_seeds}")
    if args.confirm_max_seeds is not None and args.confirm_max_seeds < args.confirm_seeds:
        raise UserError(f"--confirm-max-seeds {args.confirm_max_seeds} is below --confirm-seeds {args.confirm_seeds}: "
                        "the race adds seeds after the first N, up to M")
    if args.confirm_max_seeds is not None and args.confirm_max_seeds > MAX_SEEDS:
        raise UserError(f"--confirm-max-seeds {args.confirm_max_seeds} is more than {MAX_SEEDS} seeds per "
                        "configuration; give at most that")
    if not (math.isfinite(args.margin) and 0 < args.margin < 100):
        raise UserError(f"--margin is in accuracy points, above 0 and below 100, got {args.margin:g}")
    if args.confirm_top < 1 and args.confirm_seeds > 0:
        raise UserError(f"--confirm-top must be positive when --confirm-seeds is above 0, got {args.confirm_top} "
                        "(--confirm-seeds 0 skips the confirmation stage)")


def max_t(args: argparse.Namespace) -> int:
    """ASHA's horizon: --max-t, else the student's epochs."""
    return args.max_t or student_job(args).recipe().epochs


def data_config(args: argparse.Namespace) -> DataConfig:
    return DataConfig(dataset=args.dataset, data_dir=str(Path(args.data_dir).expanduser().resolve()),
                      download=args.download, verify_md5=not args.no_verify, val_size=args.val_size,
                      split_seed=args.seed,
                      few_shot_fraction=args.few_shot, few_shot_mode=args.few_shot_mode,
                      zero_shot_classes=tuple(args.zero_shot_classes))


def runtime_config(args: argparse.Namespace) -> RuntimeConfig:
    return RuntimeConfig(seed=args.seed, compile=args.compile)


def student_job(args: argparse.Namespace) -> StudentJob:
    recipe = overridden_recipe(mll_recipe(args.student), args.epochs, batch_size=args.batch_size,
                               schedule=args.schedule)
    return StudentJob(arch=args.student, teacher_arch=args.teacher, data=data_config(args), optim=recipe,
                      runtime=runtime_config(args), distillers=distiller_configs(args, args.teacher, args.student),
                      ce_weight=args.ce_weight)


def build_jobs(args: argparse.Namespace, teacher_objective: str | None = None) -> Jobs:
    """The MLL teacher, the trials' teacher stage (when the search trains one with `teacher_objective`) and the
    student, from the options (recipe defaults from distill.config)."""
    runtime, data = runtime_config(args), data_config(args)
    mll = overridden_recipe(mll_recipe(args.teacher), args.teacher_epochs, batch_size=args.batch_size,
                            schedule=args.schedule)
    teacher = TeacherJob(arch=args.teacher, data=data, optim=mll, runtime=runtime)
    stage = None
    if teacher_objective is not None:
        recipe = mll if args.teacher_start == "scratch" else overridden_recipe(
            fine_tune_recipe(args.teacher), args.stage_epochs, batch_size=args.batch_size)
        objective = TEACHER_OBJECTIVES.get(teacher_objective).Config()
        stage = TeacherStage(replace(teacher, optim=recipe, objective=objective), args.teacher_start)
    return Jobs(teacher=teacher, stage=stage, student=student_job(args))
