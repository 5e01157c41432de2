"""Does the compiled step learn what the eager step learns? KD students trained both ways, paired seeds.

One MLL teacher (cross-entropy, seed 0; both paths distil it, so it trains with the faster, compiled step), then per
seed a KD student trained with the eager step and one with `--compile MODE` (on CUDA, reduce-overhead: CUDA graphs),
from the same initialisation and data order. `--parallel N` trains N students at once, one process each: a GPU that
one of these small nets leaves mostly idle trains several at nearly one's speed each, and their images/s then
share the device. Reports each path's last-epoch validation and test accuracy as mean ± sd over seeds, the paired
difference with its 95% CI, and training images/s. The default data is CIFAR-100-shaped and learnable: 100 classes
of generated 3x32x32 images whose Bayes posterior is known. Tuning-free: nothing here is chosen by the test set.
Usage: python -m bench.fast_path_accuracy [--device cuda] [--epochs 30] [--seeds 3] [--parallel 6] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from distill.cli import add_compile_option, run_cli
from distill.config import (DataConfig, OptimConfig, RuntimeConfig, StudentJob, TeacherJob, mll_recipe,
                            overridden_recipe)
from distill.data import DataSplits, load_splits
from distill.models import save_weights
from distill.runs import build_student_run, build_teacher_run, evaluate_split, load_teacher
from search.stats import estimate, paired_difference


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="synthetic-bcpd:classes=100,dim=32,separation=4,train=45000,test=10000,seed=0")
    parser.add_argument("--data-dir", default="./data")
    parser.add_argument("--teacher", default="resnet32x4")
    parser.add_argument("--student", default="resnet8x4")
    parser.add_argument("--teacher-epochs", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=30, help="student epochs (cosine schedule)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    add_compile_option(parser)
    parser.set_defaults(compile="reduce-overhead")
    parser.add_argument("--parallel", type=int, default=1,
                        help="students trained at once, one process each (their images/s then share the device)")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.parallel < 1:
        parser.error(f"--parallel must be at least 1, got {args.parallel}")
    return args


def last_epoch(run) -> dict[str, float]:
    """Train `run` to its end; its last epoch's validation accuracy, mean images/s and wall seconds."""
    start = time.perf_counter()
    results = list(run.trainer.epochs())
    return {"val_acc": results[-1].val_acc, "img_s": statistics.fmean(r.images_per_sec for r in results[1:] or results),
            "seconds": time.perf_counter() - start}


def data_config(args: argparse.Namespace) -> DataConfig:
    """The benchmark's dataset, as every process (the teacher's and each student's) loads it."""
    return DataConfig(dataset=args.dataset, data_dir=args.data_dir)


def recipe(args: argparse.Namespace, arch: str, epochs: int) -> OptimConfig:
    """The MLL recipe of `arch` on a cosine schedule, at the benchmark's batch and `epochs`."""
    return overridden_recipe(mll_recipe(arch), epochs, batch_size=args.batch_size, schedule="cosine")


def student_scores(args: argparse.Namespace, splits: DataSplits, teacher, seed: int, mode: str) -> dict[str, float]:
    """One KD student of `teacher` with the step `mode`: its last epoch's scores, test accuracy included."""
    runtime = RuntimeConfig(seed=seed, device=args.device, compile=mode)
    job = StudentJob(arch=args.student, teacher_arch=args.teacher, data=data_config(args),
                     optim=recipe(args, args.student, args.epochs), runtime=runtime)
    run = build_student_run(job, splits, teacher=teacher)
    scores = last_epoch(run)
    scores["test_acc"] = evaluate_split(run.trainer.model, splits, runtime, "test")["test_acc"]
    return scores


def student_in_worker(args: argparse.Namespace, teacher_file: str, threads: int, seed: int, mode: str) -> dict:
    """`student_scores` in a worker process of `--parallel`: the data from its cache, the teacher from its file."""
    torch.set_num_threads(threads)
    splits = load_splits(data_config(args))
    teacher = load_teacher(args.teacher, teacher_file, splits.num_classes)
    return student_scores(args, splits, teacher, seed, mode)


def students(args: argparse.Namespace, splits: DataSplits, teacher) -> Iterator[tuple[int, str, dict[str, float]]]:
    """Every (seed, step mode) student's scores as each finishes: in this process, or `--parallel` at once in
    spawned processes sharing the device (each with an equal share of the CPU threads)."""
    pairs = [(seed, mode) for seed in range(1, args.seeds + 1) for mode in ("off", args.compile)]
    if args.parallel == 1:
        for seed, mode in pairs:
            yield seed, mode, student_scores(args, splits, teacher, seed, mode)
        return
    threads = max(1, torch.get_num_threads() // args.parallel)
    with tempfile.TemporaryDirectory() as folder, ProcessPoolExecutor(
            args.parallel, mp_context=multiprocessing.get_context("spawn")) as pool:
        teacher_file = str(save_weights(teacher, Path(folder, "teacher.pth")))
        futures = {pool.submit(student_in_worker, args, teacher_file, threads, seed, mode): (seed, mode)
                   for seed, mode in pairs}
        for future in as_completed(futures):
            yield *futures[future], future.result()


def main(argv=None) -> int:
    args = parse(argv)
    data = data_config(args)
    splits = load_splits(data)
    # The teacher is shared by both paths, so the step it trains with takes no side; the compiled one is faster.
    teacher_job = TeacherJob(arch=args.teacher, data=data, optim=recipe(args, args.teacher, args.teacher_epochs),
                             runtime=RuntimeConfig(device=args.device, compile=args.compile))
    teacher_run = build_teacher_run(teacher_job, splits)
    teacher = last_epoch(teacher_run)
    print(f"teacher {args.teacher}: val acc {teacher['val_acc']:.4f} ({teacher['seconds']:.0f} s)", flush=True)
    shared = f", {args.parallel} students at once" if args.parallel > 1 else ""
    per_path: dict[str, dict[str, dict[int, float]]] = {}
    for seed, mode, scores in students(args, splits, teacher_run.trainer.model):
        print(f"seed {seed} {mode:16s} val {scores['val_acc']:.4f} test {scores['test_acc']:.4f} "
              f"{scores['img_s']:.0f} img/s ({scores['seconds']:.0f} s{shared})", flush=True)
        for key, value in scores.items():
            per_path.setdefault(mode, {}).setdefault(key, {})[seed] = value
    eager, fast = per_path["off"], per_path[args.compile]
    summary = {
        "dataset": args.dataset, "teacher": args.teacher, "student": args.student, "epochs": args.epochs,
        "teacher_val_acc": teacher["val_acc"], "seeds": args.seeds, "compile": args.compile, "parallel": args.parallel,
        "paths": {mode: {key: estimate(list(values.values())).as_dict() for key, values in scores.items()}
                  for mode, scores in per_path.items()},
        "difference": {key: paired_difference(fast[key], eager[key]).as_dict() for key in ("val_acc", "test_acc")},
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
