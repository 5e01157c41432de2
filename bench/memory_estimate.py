"""Is the memory estimate a floor? `distill.memory`'s estimate beside the peak memory a real run takes, on the CPU.

Each case runs in a fresh process: CIFAR-shaped generated data is loaded, the process's resident memory noted, then
the run is built and trains one epoch; its peak resident memory above that point is what the run took. The estimate
(parameters, gradients and momentum, one batch's activations, each distiller's per-step tensors) refuses a run only
when it exceeds the device's memory, so it must not exceed what the run really takes: the ratio measured/estimate
should be at least 1. CPU only (the allocator differs on a GPU: there `torch.cuda.max_memory_allocated` would be the
measure).
Usage: python -m bench.memory_estimate [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
from dataclasses import replace
from pathlib import Path

DATA = "synthetic-bcpd:classes=100,dim=32,separation=4,train=1000,test=100,seed=0"
CASES = [  # (name, kind, teacher, student, distillers {name: settings}, batch)
    ("resnet32x4 teacher, batch 128", "teacher", "resnet32x4", None, {}, 128),
    ("resnet32x4 -> resnet8x4, KD, batch 64", "student", "resnet32x4", "resnet8x4", {"kd": {}}, 64),
    ("resnet32x4 -> resnet8x4, KD + CRD (nce_k 16384), batch 64", "student", "resnet32x4", "resnet8x4",
     {"kd": {}, "crd": {}}, 64),
    ("resnet56 -> resnet20, KD + MIMKD, batch 64", "student", "resnet56", "resnet20", {"kd": {}, "mimkd": {}}, 64),
    ("wrn_40_2 -> wrn_16_2, DKD, batch 128", "student", "wrn_40_2", "wrn_16_2", {"dkd": {}}, 128),
]


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def measure(case: tuple) -> dict:
    """One case in this (fresh) process: the estimate's parts and the peak resident memory the run added."""
    import torch

    from distill.config import DataConfig, OptimConfig, RuntimeConfig, StudentJob, TeacherJob
    from distill.data import load_splits
    from distill.engine import NonFiniteLossError
    from distill.losses import DISTILLERS
    from distill.runs import build_student_run, build_teacher_run, student_memory, teacher_memory

    torch.set_num_threads(1)
    name, kind, teacher, student, distillers, batch = case
    data = DataConfig(dataset=DATA, val_size=100)
    recipe = replace(OptimConfig(), epochs=1, batch_size=batch)
    runtime = RuntimeConfig(device="cpu", progress=False)
    splits = load_splits(data)
    if kind == "teacher":
        job = TeacherJob(arch=teacher, data=data, runtime=runtime, optim=recipe)
        what, parts = teacher_memory(job, splits.num_classes, splits.train.image_shape, len(splits.train))
    else:
        configs = {d: DISTILLERS.get(d).Config().with_values(v) for d, v in distillers.items()}
        job = StudentJob(arch=student, teacher_arch=teacher, distillers=configs, data=data, runtime=runtime,
                         optim=recipe)
        what, parts = student_memory(job, splits.num_classes, splits.student_train.image_shape,
                                     splits.student_train.labels)
    before = resident_bytes()
    if kind == "teacher":
        run = build_teacher_run(job, splits)
    else:
        from distill import models

        run = build_student_run(job, splits, teacher=models.create(teacher, splits.num_classes))
    try:
        for _ in run.trainer.epochs():
            pass
        stopped = None
    except NonFiniteLossError as err:  # an untrained teacher can make a loss diverge; every step allocates alike
        stopped = str(err).split(" (")[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    estimate = sum(bytes_ for _, bytes_ in parts)
    return {"case": name, "run": what, "estimate_bytes": estimate, "parts": dict(parts),
            "measured_bytes": peak - before, "ratio": (peak - before) / estimate, "stopped": stopped}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")  # a fresh process per case: its peak is that case's alone
    results = []
    for case in CASES:
        with context.Pool(1) as pool:
            result = pool.apply(measure, (case,))
        results.append(result)
        print(f"{result['case']}: estimate {result['estimate_bytes'] / 2**20:.0f} MiB, measured "
              f"{result['measured_bytes'] / 2**20:.0f} MiB, measured/estimate {result['ratio']:.2f}"
              + (f" ({result['stopped']})" if result["stopped"] else ""), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
