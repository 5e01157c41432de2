"""Single runs: `python -m distill.train {teacher,mcmi,student} [options]`.

  teacher   train a teacher: MLL from scratch (240 epochs, the standard CIFAR-100 recipe), or any teacher
            objective (--objective label_smoothing, mcmi); with --teacher-checkpoint it fine-tunes (20 cosine epochs)
  mcmi      fine-tune an MLL teacher with CE - lam * CMI: `teacher --objective mcmi --teacher-checkpoint PATH`
  student   distil a student from a teacher checkpoint with any distillers (--distiller kd dkd crd fitnet at
            mimkd, one or several; each has its --<name>-<setting> options)

Each run writes OUT/weights.pth ({'model': state_dict}, loadable by RepDistiller-style code),
OUT/checkpoint.pth (full state; --resume continues from it exactly) and OUT/metrics.json.
Model selection uses the validation split; --test evaluates the test set once, at the end.
Example (offline, about a minute on a laptop CPU):
  python -m distill.train teacher --dataset digits --arch resnet8 --epochs 5 --out runs/t8
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from distill.cli import (
    ArgumentParser, add_compile_option, add_distiller_options, add_settings_options, check_folder, clock,
    distiller_configs, make_writable_folder, run_cli, teacher_objective,
)
from distill.config import (
    DataConfig, OptimConfig, RuntimeConfig, StudentJob, TeacherJob, fine_tune_recipe, overridden_recipe,
)
from distill.data import DATASET_HELP
from distill.engine import EpochResult, NonFiniteLossError
from distill.errors import UserError
from distill.metrics import shown
from distill.runs import BUILDERS, Run, batch_warning
from distill.teachers import TEACHER_OBJECTIVES, MCMIConfig


def add_common(parser: argparse.ArgumentParser) -> None:
    data, runtime = DataConfig(), RuntimeConfig()
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default=data.dataset, help=DATASET_HELP)
    g.add_argument("--data-dir", default=data.data_dir, help="folder holding cifar-100-python/ etc.")
    g.add_argument("--download", action="store_true", help="fetch the dataset (through torchvision) if missing")
    g.add_argument("--no-verify", action="store_true", help="skip the md5 check of the dataset files")
    g.add_argument("--val-size", type=int, default=None, help="validation images held out of train (default: 5000 CIFAR, 180 digits; "
                   "0: a final run on all of train, with no validation)")
    g.add_argument("--few-shot", type=float, default=data.few_shot_fraction, metavar="FRACTION",
                   help="fraction of train the student sees")
    g.add_argument("--few-shot-mode", choices=["stratified", "first"], default=data.few_shot_mode,
                   help="stratified sample, or the first N images (MCMI paper protocol)")
    g.add_argument("--zero-shot-classes", type=int, nargs="*", default=[], metavar="CLASS",
                   help="classes removed from the student's data (the teacher keeps them)")
    o = parser.add_argument_group("optimisation (defaults: the published recipe for this run and net)")
    o.add_argument("--epochs", type=int, help="number of epochs; step milestones scale with it")
    o.add_argument("--lr", type=float, help="base learning rate")
    o.add_argument("--batch-size", type=int, help="images per step")
    o.add_argument("--weight-decay", type=float, help="SGD weight decay")
    o.add_argument("--schedule", choices=["step", "cosine"], help="step: ×0.1 at the milestones; cosine: to 0")
    r = parser.add_argument_group("runtime")
    r.add_argument("--seed", type=int, default=runtime.seed, help="initialisation, data order and the split")
    r.add_argument("--device", default=runtime.device, help="auto, cpu, cuda, cuda:1 ...")
    r.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=runtime.precision,
                   help="auto: bf16 autocast on CUDA, fp32 on CPU")
    add_compile_option(r)
    r.add_argument("--data-workers", type=int, default=runtime.data_workers, metavar="N",
                   help="processes decoding a set streamed from files (imagefolder, imagenet); default: torch's CPU "
                   "threads (the cores), at most 8")
    r.add_argument("--deterministic", action="store_true", help="deterministic kernels (bit-exact reruns)")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pth")
    r.add_argument("--test", action="store_true", help="evaluate on the test set once, at the end")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m distill.train", description=__doc__)
    sub = parser.add_subparsers(dest="kind", required=True)
    teacher = sub.add_parser("teacher", help="train a teacher: MLL (cross-entropy), label smoothing or MCMI, from "
                             "scratch or from a checkpoint")
    teacher.add_argument("--arch", default=TeacherJob.arch, help="zoo name (python -m distill.models list)")
    teacher.add_argument("--objective", choices=TEACHER_OBJECTIVES.names(), default=TeacherJob().objective.name(),
                         help="what the teacher minimises, with its --<objective>-<field> settings (default: mll)")
    teacher.add_argument("--teacher-checkpoint", default="", help="start from these weights with the fine-tuning "
                         "recipe (20 cosine epochs; default: from scratch with the MLL recipe)")
    add_settings_options(teacher, TEACHER_OBJECTIVES)
    mcmi = sub.add_parser("mcmi", help="fine-tune an MLL teacher with CE - lam * CMI")
    mcmi.add_argument("--arch", default=TeacherJob.arch, help="the teacher's zoo name")
    mcmi.add_argument("--teacher-checkpoint", required=True, help="the MLL teacher's .pth")
    mcmi.add_argument("--lam", type=float, default=MCMIConfig.lam,
                      help="CMI weight; > 0 maximises CMI (the paper's code writes it negated)")
    mcmi.add_argument("--centroid-ema", type=float, default=None, help="EMA decay to update the centroids, e.g. 0.9999")
    student = sub.add_parser("student", help="distil a student with KD, DKD, CRD, FitNet, AT, MIMKD or a mix")
    student.add_argument("--arch", default=StudentJob.arch, help="the student's zoo name")
    student.add_argument("--teacher", default=StudentJob.teacher_arch, help="the teacher's zoo name")
    student.add_argument("--teacher-checkpoint", required=True, help="the teacher's .pth")
    add_distiller_options(student, tuple(StudentJob().distillers))
    for command in (teacher, mcmi, student):
        add_common(command)
    return parser.parse_args(argv)


def build_job(args: argparse.Namespace) -> TeacherJob | StudentJob:
    """The typed job described by the command line (recipe defaults filled in by the job)."""
    data = DataConfig(dataset=args.dataset, data_dir=args.data_dir, download=args.download,
                      verify_md5=not args.no_verify, val_size=args.val_size, split_seed=args.seed,
                      few_shot_fraction=args.few_shot, few_shot_mode=args.few_shot_mode,
                      zero_shot_classes=tuple(args.zero_shot_classes))
    if args.data_workers is not None and args.data_workers < 1:
        raise UserError(f"--data-workers must be positive, got {args.data_workers}")
    runtime = RuntimeConfig(seed=args.seed, device=args.device, precision=args.precision, compile=args.compile,
                            data_workers=args.data_workers,
                            deterministic=args.deterministic, progress=sys.stderr.isatty())
    if args.kind in ("teacher", "mcmi"):  # `mcmi`: the teacher command with the MCMI objective, fine-tuning
        objective = (MCMIConfig(lam=args.lam, centroid_ema=args.centroid_ema) if args.kind == "mcmi"
                     else teacher_objective(args))
        job = TeacherJob(arch=args.arch, data=data, runtime=runtime, objective=objective,
                         teacher_checkpoint=args.teacher_checkpoint,
                         optim=fine_tune_recipe(args.arch) if args.teacher_checkpoint else None)
    else:
        job = StudentJob(arch=args.arch, teacher_arch=args.teacher, teacher_checkpoint=args.teacher_checkpoint,
                         data=data, runtime=runtime, distillers=distiller_configs(args, args.teacher, args.arch),
                         ce_weight=args.ce_weight)
    return replace(job, optim=override_recipe(job.recipe(), args))


def override_recipe(recipe: OptimConfig, args: argparse.Namespace) -> OptimConfig:
    return overridden_recipe(recipe, args.epochs, lr=args.lr, batch_size=args.batch_size,
                             weight_decay=args.weight_decay, schedule=args.schedule)


def distillation_line(job: StudentJob, extra: dict[str, int]) -> str:
    """'0.1 CE + kd + crd (+16,512 trainable parameters)': what the student learns from."""
    parts = [f"{job.ce():g} CE"] + [name + (f" (+{extra[name]:,} trainable parameters)" if extra[name] else "")
                                     for name in job.distillers]
    return " + ".join(parts)


def progress_printer(enabled: bool):
    """A per-step callback that redraws one status line on stderr (only on a terminal)."""
    if not enabled:
        return None

    def show(step: int, steps: int) -> None:
        print(f"\r  step {step}/{steps}", end="" if step < steps else "\r\033[K", file=sys.stderr, flush=True)

    return show


def epoch_line(result: EpochResult, left_s: float) -> str:
    """One epoch: loss and its terms, validation (when the run keeps a split), speed, and `left_s` seconds left."""
    terms = ", ".join(f"{k} {v:.3f}" for k, v in result.train_terms.items())
    validation = (f"val {100 * result.val_acc:.2f}% (best {100 * result.val_acc_max:.2f}%)  cmi {result.val_cmi:.3f}  "
                  if result.validated else "")
    return (f"epoch {result.epoch}/{result.epochs}  loss {result.train_loss:.3f} ({terms})  {validation}"
            f"lr {result.lr:.4g}  {result.images_per_sec:.0f} img/s  {result.seconds:.1f}s  ~{clock(left_s)} left")


def write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    job = build_job(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; name a folder for weights.pth, checkpoint.pth and metrics.json")
    check_folder(out, "--out")
    checkpoint = out / "checkpoint.pth"
    if checkpoint.exists() and not args.resume:
        raise UserError(f"{checkpoint} exists: pass --resume to continue that run, or choose another --out")
    if args.resume and not checkpoint.exists():
        raise UserError(f"nothing to resume: {checkpoint} does not exist")
    run: Run = BUILDERS[args.kind](job, on_step=progress_printer(job.runtime.progress))
    if args.resume:
        run.resume(checkpoint)
        print(f"resumed {checkpoint} after epoch {run.trainer.epoch}")
    print(f"{args.kind} {run.arch} on {run.splits.name}: {run.trainer.train_loader.num_images} train / "
          f"{len(run.splits.val)} val images, {job.recipe().epochs} epochs, device {run.trainer.device}")
    if isinstance(job, StudentJob):
        print("loss: " + distillation_line(job, run.trainer.objective.extra_parameters()))
    warning = batch_warning(job.recipe().batch_size, run.trainer.train_loader.num_images, "training")
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    make_writable_folder(out, "--out")
    started, first = time.monotonic(), run.trainer.epoch
    try:
        for result in run.trainer.epochs():
            run.save_checkpoint(checkpoint)
            per_epoch = (time.monotonic() - started) / (result.epoch - first)
            print(epoch_line(result, per_epoch * (result.epochs - result.epoch)), flush=True)
    except NonFiniteLossError as err:
        raise UserError(str(err)) from None
    run.save_weights(out / "weights.pth")
    summary = {"run": run.describe(), "history": run.trainer.history,
               "final": run.trainer.history[-1] if run.trainer.history else {},
               "best_val_acc": run.trainer.best_val_acc}
    if args.test:
        summary["test"] = run.test_metrics()
        print("test " + "  ".join(shown(k, v) for k, v in summary["test"].items()))
    write_json(out / "metrics.json", summary)
    print(f"wrote {out / 'weights.pth'} and {out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
