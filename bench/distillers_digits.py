"""Does each distiller help a few-shot student on real data? Every registered method at its published
defaults, and a CE-only student, on 10% of digits, paired seeds.

One MLL teacher (resnet14 by default, all of digits' training split, seed 0); then per seed, students
(resnet8) that see 10% of the training split, one per method, each with the same initialisation and
batches (paired seeds). Rows report the last epoch's validation and test accuracy as mean ± sd over
seeds, and the paired difference from the CE-only student. Test is read once per student, at the end.
Usage: python -m bench.distillers_digits [--methods kd dkd ...] [--settings crd.nce_k=64] [--seeds 3]
       [--out bench/distillers_digits.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from distill.cli import run_cli
from distill.config import DataConfig, RuntimeConfig, StudentJob, TeacherJob, mll_recipe, overridden_recipe
from distill.data import load_splits
from distill.losses import DISTILLERS
from distill.runs import build_student_run, build_teacher_run
from distill.settings import configure

CE_ONLY = "CE only"


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="resnet14")
    parser.add_argument("--student", default="resnet8")
    parser.add_argument("--teacher-epochs", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=40, help="student epochs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--few-shot", type=float, default=0.1)
    parser.add_argument("--methods", nargs="+", default=DISTILLERS.names(), help="each alone, at its defaults")
    parser.add_argument("--settings", nargs="*", default=[], metavar="KEY=VALUE",
                        help="changes from the defaults, e.g. crd.nce_k=64 (the table names them)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="bench/distillers_digits.json")
    return parser.parse_args(argv)


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.fmean(values):.4f} ± {sd:.4f}"


def main(argv=None) -> int:
    args = parse(argv)
    data = DataConfig(dataset="digits", few_shot_fraction=args.few_shot)
    splits = load_splits(data)
    start = time.perf_counter()
    teacher_recipe = overridden_recipe(mll_recipe(args.teacher), args.teacher_epochs, batch_size=64,
                                       schedule="cosine")
    teacher_run = build_teacher_run(TeacherJob(arch=args.teacher, data=data, optim=teacher_recipe), splits)
    for _ in teacher_run.trainer.epochs():
        pass
    teacher = teacher_run.trainer.model
    teacher_scores = teacher_run.test_metrics()
    print(f"MLL teacher {args.teacher}: val {teacher_run.trainer.history[-1]['val_acc']:.4f}, test "
          f"{teacher_scores['test_acc']:.4f}, {time.perf_counter() - start:.0f}s; students see "
          f"{len(splits.student_train)} images", flush=True)
    recipe = overridden_recipe(mll_recipe(args.student), args.epochs, batch_size=args.batch_size, schedule="cosine")
    changes = dict(item.split("=", 1) for item in args.settings)
    methods = {CE_ONLY: {}, **{name: configure([name], changes) for name in args.methods}}
    results: dict[str, list[dict]] = {label: [] for label in methods}
    for seed in range(1, args.seeds + 1):
        for label, distillers in methods.items():
            job = StudentJob(arch=args.student, teacher_arch=args.teacher, data=data, optim=recipe,
                             runtime=RuntimeConfig(seed=seed), distillers=distillers)
            run = build_student_run(job, splits, teacher=teacher)
            began = time.perf_counter()
            history = [result.metrics() for result in run.trainer.epochs()]
            results[label].append({"val_acc": history[-1]["val_acc"], "test_acc": run.test_metrics()["test_acc"],
                                   "ce_weight": job.ce(), "seconds": time.perf_counter() - began})
            print(f"seed {seed} {label}: val {results[label][-1]['val_acc']:.4f} "
                  f"test {results[label][-1]['test_acc']:.4f} ({results[label][-1]['seconds']:.0f}s)", flush=True)
    report = {"args": vars(args), "teacher": teacher_scores, "seconds": time.perf_counter() - start,
              "settings": {name: {"ce_weight": results[name][0]["ce_weight"], **vars(configs[name])}
                           for name, configs in methods.items() if configs},
              "students": results}
    with open(args.out, "w") as handle:
        json.dump(report, handle, indent=2, default=str)
    print(f"\n{args.seeds} seeds, {len(splits.student_train)} student images, {report['seconds']:.0f}s")
    print("| student | val acc | test acc | test acc − CE only (paired) | s per run |")
    print("|---|---|---|---|---|")
    for label, rows in results.items():
        gains = [r["test_acc"] - c["test_acc"] for r, c in zip(rows, results[CE_ONLY])]
        gain = "—" if label == CE_ONLY else mean_sd(gains)
        print(f"| {label} | {mean_sd([r['val_acc'] for r in rows])} | {mean_sd([r['test_acc'] for r in rows])} | "
              f"{gain} | {statistics.fmean(r['seconds'] for r in rows):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
