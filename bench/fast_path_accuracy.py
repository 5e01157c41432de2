"""Does the compiled step learn what the eager step learns? KD students trained both ways, paired seeds.

One MLL teacher (cross-entropy, seed 0), then per seed a KD student trained with the eager step and one with
`--compile MODE` (on CUDA, reduce-overhead: CUDA graphs), from the same initialisation and data order. Reports each
path's last-epoch validation and test accuracy as mean ± sd over seeds, the paired difference with its 95% CI,
and training images/s. The default data is CIFAR-100-shaped and learnable: 100 classes of generated 3x32x32 images
whose Bayes posterior is known. Tuning-free: nothing here is chosen by the test set.
Usage: python -m bench.fast_path_accuracy [--device cuda] [--epochs 30] [--seeds 3] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from distill.cli import add_compile_option, run_cli
from distill.config import DataConfig, RuntimeConfig, StudentJob, TeacherJob, mll_recipe, overridden_recipe
from distill.data import load_splits
from distill.runs import build_student_run, build_teacher_run, evaluate_split
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
    parser.add_argument("--out", help="also write the figures to this JSON file")
    return parser.parse_args(argv)


def last_epoch(run) -> dict[str, float]:
    """Train `run` to its end; its last epoch's validation accuracy, mean images/s and wall seconds."""
    start = time.perf_counter()
    results = list(run.trainer.epochs())
    return {"val_acc": results[-1].val_acc, "img_s": statistics.fmean(r.images_per_sec for r in results[1:] or results),
            "seconds": time.perf_counter() - start}


def main(argv=None) -> int:
    args = parse(argv)
    data = DataConfig(dataset=args.dataset, data_dir=args.data_dir)
    splits = load_splits(data)
    recipe = lambda arch, epochs: overridden_recipe(mll_recipe(arch), epochs, batch_size=args.batch_size,  # noqa: E731
                                                    schedule="cosine")
    teacher_run = build_teacher_run(TeacherJob(arch=args.teacher, data=data, optim=recipe(args.teacher,
                                               args.teacher_epochs), runtime=RuntimeConfig(device=args.device)), splits)
    teacher = last_epoch(teacher_run)
    print(f"teacher {args.teacher}: val acc {teacher['val_acc']:.4f} ({teacher['seconds']:.0f} s)", flush=True)
    per_path: dict[str, dict[str, dict[int, float]]] = {}
    for seed in range(1, args.seeds + 1):
        for mode in ("off", args.compile):
            runtime = RuntimeConfig(seed=seed, device=args.device, compile=mode)
            job = StudentJob(arch=args.student, teacher_arch=args.teacher, data=data,
                             optim=recipe(args.student, args.epochs), runtime=runtime)
            run = build_student_run(job, splits, teacher=teacher_run.trainer.model)
            scores = last_epoch(run)
            scores["test_acc"] = evaluate_split(run.trainer.model, splits, runtime, "test")["test_acc"]
            print(f"seed {seed} {mode:16s} val {scores['val_acc']:.4f} test {scores['test_acc']:.4f} "
                  f"{scores['img_s']:.0f} img/s ({scores['seconds']:.0f} s)", flush=True)
            for key, value in scores.items():
                per_path.setdefault(mode, {}).setdefault(key, {})[seed] = value
    eager, fast = per_path["off"], per_path[args.compile]
    summary = {
        "dataset": args.dataset, "teacher": args.teacher, "student": args.student, "epochs": args.epochs,
        "teacher_val_acc": teacher["val_acc"], "seeds": args.seeds, "compile": args.compile,
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
