"""Does MCMI improve the teacher's estimate of the Bayes posterior? The paper's comparison, on data where
P*(y|x) is known (synthetic-bcpd), with this project's own runs.

One MLL teacher (cross-entropy, seed 0), then, per seed, equal-budget fine-tunes of it with CE − λ·CMI
at λ = 0 (the control: the same extra epochs without the CMI term) and at each λ > 0, and a KD student
distilled from each teacher (the MLL one included). Every teacher is scored on test by KL(P* ‖ P_teacher),
NLL, ECE and accuracy, every student by accuracy and KL; rows report mean ± sd over seeds.
Train/validation split as in a search; test is read once per net at its last epoch.
Usage: python -m bench.bcpd_mcmi [--lams 0 0.1 0.3] [--seeds 3] [--out bench/bcpd_mcmi.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from distill.config import (
    DataConfig, RuntimeConfig, StudentJob, TeacherJob, fine_tune_recipe, mll_recipe, overridden_recipe,
)
from distill import models
from distill.cli import run_cli
from distill.data import load_splits
from distill.errors import UserError
from distill.runs import build_student_run, build_teacher_run, evaluate_split
from distill.teachers import MCMIConfig

TEACHER_SCORES = ("test_kl_bayes", "test_nll", "test_ece", "test_acc")
STUDENT_SCORES = ("test_acc", "test_kl_bayes", "test_nll")


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="synthetic-bcpd:classes=10,dim=8,separation=3,train=3000,test=1000,seed=0")
    parser.add_argument("--data-dir", default="./data")
    parser.add_argument("--teacher", default="resnet14")
    parser.add_argument("--student", default="resnet8")
    parser.add_argument("--teacher-epochs", type=int, default=20)
    parser.add_argument("--mcmi-epochs", type=int, default=6)
    parser.add_argument("--student-epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lams", type=float, nargs="+", default=[0.0, 0.1, 0.3])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="bench/bcpd_mcmi.json")
    return parser.parse_args(argv)


def trained(run) -> object:
    for _ in run.trainer.epochs():
        pass
    return run.trainer.model


def fresh_copy(net, arch: str, splits):
    """A trainable copy of the MLL teacher for a fine-tune: it is trained in place, and the copy must not
    inherit the frozen flags a student run puts on the teacher it distils from."""
    copy = models.create(arch, splits.num_classes)
    copy.load_state_dict(net.state_dict())
    return copy


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.fmean(values):.4f} ± {sd:.4f}"


def main(argv=None) -> int:
    args = parse(argv)
    data = DataConfig(dataset=args.dataset, data_dir=args.data_dir)
    splits = load_splits(data)
    if splits.test.posteriors is None:
        raise UserError(f"{args.dataset} carries no true posterior, so KL(P* ‖ P_teacher) is unknown: use "
                        "synthetic-bcpd[:parameters]")
    start = time.perf_counter()
    recipe = overridden_recipe(mll_recipe(args.teacher), args.teacher_epochs, batch_size=args.batch_size,
                               schedule="cosine")
    mll = trained(build_teacher_run(TeacherJob(arch=args.teacher, data=data, optim=recipe), splits))
    print(f"MLL teacher trained in {time.perf_counter() - start:.0f}s", flush=True)
    teachers: dict[str, list[dict]] = {"MLL teacher": []}
    students: dict[str, list[dict]] = {"MLL teacher": []}
    mll_scores = evaluate_split(mll, splits, RuntimeConfig(), "test")
    for seed in range(1, args.seeds + 1):
        runtime = RuntimeConfig(seed=seed)
        candidates = {"MLL teacher": mll}
        for lam in args.lams:
            job = TeacherJob(arch=args.teacher, data=data, runtime=runtime, objective=MCMIConfig(lam=lam),
                             optim=overridden_recipe(fine_tune_recipe(args.teacher), args.mcmi_epochs,
                                                     batch_size=args.batch_size))
            label = "λ=0 control" if lam == 0 else f"λ={lam:g}"
            candidates[label] = trained(build_teacher_run(job, splits, teacher=fresh_copy(mll, args.teacher, splits)))
            teachers.setdefault(label, []).append(evaluate_split(candidates[label], splits, runtime, "test"))
            students.setdefault(label, [])
        teachers["MLL teacher"].append(mll_scores)
        for label, teacher in candidates.items():
            job = StudentJob(arch=args.student, teacher_arch=args.teacher, data=data, runtime=runtime,
                             optim=overridden_recipe(mll_recipe(args.student), args.student_epochs,
                                                     batch_size=args.batch_size, schedule="cosine"))
            student = trained(build_student_run(job, splits, teacher=teacher))
            students[label].append(evaluate_split(student, splits, runtime, "test"))
        print(f"seed {seed} done at {time.perf_counter() - start:.0f}s", flush=True)
    report = {"args": vars(args), "bayes_acc": mll_scores["test_bayes_acc"], "seconds": time.perf_counter() - start,
              "teachers": teachers, "students": students}
    with open(args.out, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"\nBayes accuracy (test): {mll_scores['test_bayes_acc']:.4f}; {args.seeds} seeds; "
          f"{report['seconds']:.0f}s")
    print("| teacher | " + " | ".join(f"teacher {s}" for s in TEACHER_SCORES) + " | "
          + " | ".join(f"student {s}" for s in STUDENT_SCORES) + " |")
    print("|---" * (1 + len(TEACHER_SCORES) + len(STUDENT_SCORES)) + "|")
    for label in teachers:
        cells = [mean_sd([r[s] for r in teachers[label]]) for s in TEACHER_SCORES]
        cells += [mean_sd([r[s] for r in students[label]]) for s in STUDENT_SCORES]
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
