"""How trials share the GPUs when the command line did not say: small nets leave most of a GPU idle.

At the CIFAR shape one KD trial keeps an H100 about 1% busy, bound by kernel launches rather than arithmetic,
and four trials on one H100 trained 3.5 times as many images per second as one (measured for issue 15). So a
search that sees GPUs and was given no `--gpus-per-trial` packs several small-image trials onto each GPU and
raises the concurrency to match; large images (ImageNet-sized nets) get a whole GPU per trial, and a trial of
several data-parallel workers gets one GPU per worker.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

SMALL_IMAGE_SIDE = 64  # images up to this many pixels a side (CIFAR, digits) count as small
SMALL_IMAGE_GPU_SHARE = 0.25  # four small-image trials per GPU
CPU_CONCURRENT_TRIALS = 4  # trials at once when no GPU is used and --max-concurrent-trials is not given


@dataclass(frozen=True)
class Packing:
    """The GPU share of one trial, how many trials run at once, and the line that says so (None: all given)."""

    gpus_per_trial: float
    max_concurrent_trials: int
    note: str | None = None


def gpu_share(image_side: int) -> float:
    """The GPU fraction one trial gets by default: a quarter for small images, a whole GPU otherwise."""
    return SMALL_IMAGE_GPU_SHARE if image_side <= SMALL_IMAGE_SIDE else 1.0


def pack(gpus_per_trial: float | None, max_concurrent: int | None, visible_gpus: float, cpus: float,
         cpus_per_trial: float, image_side: int, workers: int = 1) -> Packing:
    """Fill in what the user left out: with GPUs visible, `gpu_share(image_side)` of one per trial (one per worker
    of a multi-worker trial) and as many trials at once as the GPUs and CPUs hold; without, CPU trials,
    `CPU_CONCURRENT_TRIALS` at once, or as many multi-worker trials as the CPUs hold (their drivers hold no
    resources, so only this cap keeps more Train runs from queueing for workers)."""
    share = gpus_per_trial
    if share is None:
        share = (float(workers) if workers > 1 else gpu_share(image_side)) if visible_gpus >= 1 else 0.0
    concurrent, cpu_bound = max_concurrent, False
    if concurrent is None:
        if share > 0 and visible_gpus > 0:
            gpu_room, cpu_room = math.floor(visible_gpus / share), math.floor(cpus / cpus_per_trial)
            concurrent, cpu_bound = max(1, min(gpu_room, cpu_room)), cpu_room < gpu_room
        elif workers > 1:
            concurrent = max(1, math.floor(cpus / cpus_per_trial))
        else:
            concurrent = CPU_CONCURRENT_TRIALS
    if share == 0 or (gpus_per_trial is not None and max_concurrent is not None):
        return Packing(share, concurrent)
    per_gpu = f"{round(1 / share):g} trials share each GPU" if share < 1 else f"{share:g} GPU per trial"
    held = f", as many as {cpus:g} CPUs hold at --cpus-per-trial {cpus_per_trial:g}" if cpu_bound else ""
    note = (f"{visible_gpus:g} GPU{'s' if visible_gpus != 1 else ''} visible: {per_gpu} (--gpus-per-trial {share:g}, "
            f"--max-concurrent-trials {concurrent}{held}); give either option to choose otherwise")
    return Packing(share, concurrent, note)


def placed(trainable, resources: dict, storage: Path, max_failures: int, **inputs):
    """`trainable` with its fixed inputs and its resources for Tune: in the trial's own process, or, for more than
    one worker per trial, as a driver of a Ray Train run (`trainables.multi_worker`) whose workers hold them."""
    from ray import tune

    from trainables.multi_worker import DRIVER_RESOURCES, multi_worker

    workers = resources["workers"]
    if workers > 1:
        driver = multi_worker(trainable, workers, bool(resources["gpu"]), resources["cpu"] / workers, storage,
                              max_failures)
        return tune.with_resources(tune.with_parameters(driver, **inputs), DRIVER_RESOURCES)
    return tune.with_resources(tune.with_parameters(trainable, **inputs),
                               {"cpu": resources["cpu"], "gpu": resources["gpu"]})
