"""Training throughput of the engine against a loop written the way published KD code does it, in one run.

Rows, each measured in the same process run so that ratios compare like with like:
  reference        the KD student, torch DataLoader over PIL images with per-image torchvision transforms
                   (RandomCrop(32, 4), RandomHorizontalFlip, ToTensor, Normalize), fp32, batch 64
  student eager    the KD student on the engine: the uint8 set on the device, crop+flip+normalise batched
                   there, bf16 autocast and channels_last on CUDA
  student MODE     the same with the training step under torch.compile (--compile MODE; reduce-overhead
                   replays the step as CUDA graphs on CUDA)
  teacher ...      the MLL teacher (cross-entropy) on the engine, eager and compiled (--teacher-rows)
  N processes      N KD students as N processes on the one device at once (--processes N): total images/s
All nets see CIFAR-shaped random images (throughput does not depend on their content) with 100 classes.
Usage: python -m bench.kd_throughput [--device cuda] [--compile reduce-overhead] [--teacher-rows] [--processes 8]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from distill import models
from distill.cli import add_compile_option
from distill.config import OptimConfig, RuntimeConfig, StudentJob, TeacherJob
from distill.data import DataSplits, ImageSet
from distill.engine import resolve_device
from distill.losses import kd_divergence
from distill.runs import Run, build_student_run, build_teacher_run

MEAN, STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)
CLASSES = 100


class PilImages(Dataset):
    """CIFAR the way torchvision's CIFAR100 serves it: an HWC uint8 array, a PIL image per item."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels
        self.transform = transforms.Compose([
            transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
            transforms.ToTensor(), transforms.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def reference_loop(data: ImageSet, teacher, student, device, steps: int, warmup: int, batch: int, workers: int) -> float:
    """Images/s of the published-code style loop."""
    dataset = PilImages(data.images.permute(0, 2, 3, 1).numpy(), data.labels.numpy())
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, pin_memory=device.type == "cuda",
                        drop_last=True, persistent_workers=workers > 0)
    teacher, student = teacher.to(device).eval(), student.to(device).train()
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    seen, start, step = 0, None, 0
    while step < warmup + steps:
        for x, y in loader:
            if step == warmup:
                sync(device)
                start, seen = time.perf_counter(), 0
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.no_grad():
                t_logits = teacher(x)
            s_logits = student(x)
            loss = 0.1 * F.cross_entropy(s_logits, y) + 0.9 * kd_divergence(s_logits, t_logits, 4.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(y)
            step += 1
            if step == warmup + steps:
                break
    sync(device)
    return seen / (time.perf_counter() - start)


def engine_run(kind: str, data: ImageSet, teacher, args, device: torch.device, compile_mode: str) -> Run:
    """A student (KD from `teacher`) or an MLL teacher run of this engine on `data`."""
    splits = DataSplits("bench", tuple(str(i) for i in range(CLASSES)), MEAN, STD, data, data,
                        data.subset(torch.arange(64)), data)
    optim = OptimConfig(epochs=1, batch_size=args.batch_size)
    runtime = RuntimeConfig(device=str(device), compile=compile_mode, precision=args.precision)
    if kind == "teacher":
        return build_teacher_run(TeacherJob(arch=args.teacher, optim=optim, runtime=runtime), splits)
    job = StudentJob(arch=args.student, teacher_arch=args.teacher, optim=optim, runtime=runtime)  # KD: T 4, α 0.9
    return build_student_run(job, splits, teacher=teacher)


def engine_rate(run: Run, device: torch.device, steps: int, warmup: int, barrier: tuple[Path, int] | None = None) -> float:
    """Training images/s of `run` over `steps` steps after `warmup` (which also absorbs compilation). With
    `barrier` (a folder, a count), the timed steps start once that many processes have finished their warm-up."""
    timing = {}

    def on_step(step: int, total: int) -> None:
        if step == warmup:
            sync(device)
            if barrier is not None:
                wait_for_all(*barrier)
            timing["start"] = time.perf_counter()
        if step == warmup + steps:
            sync(device)
            timing["end"] = time.perf_counter()
            raise StopIteration

    run.trainer.on_step = on_step
    try:
        run.trainer.train_epoch()
    except StopIteration:
        pass
    return steps * run.trainer.train_loader.batch_size / (timing["end"] - timing["start"])


def wait_for_all(folder: Path, count: int) -> None:
    """Say this process is warmed up, then wait until `count` processes have said so."""
    Path(folder, str(os.getpid())).touch()
    while len(list(folder.iterdir())) < count:
        time.sleep(0.01)


def packed_rates(args, processes: int) -> list[float]:
    """Images/s of each of `processes` KD students trained at once as separate processes on the device, timed
    over the same stretch: each starts its clock once all have compiled and warmed up."""
    with tempfile.TemporaryDirectory() as folder:
        outputs = [Path(folder, f"{i}.json") for i in range(processes)]
        ready = Path(folder, "ready")
        ready.mkdir()
        command = [sys.executable, "-m", "bench.kd_throughput", "--engine-only", "--device", args.device,
                   "--teacher", args.teacher, "--student", args.student, "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--images", str(args.images), "--batch-size", str(args.batch_size),
                   "--precision", args.precision, "--compile", args.compile, "--barrier", str(ready), str(processes),
                   "--threads", str(max(1, torch.get_num_threads() // processes))]  # no oversubscribed CPU
        children = [subprocess.Popen([*command, "--json", str(out)]) for out in outputs]
        if any(child.wait() != 0 for child in children):
            raise SystemExit("error: a packed benchmark process failed (its output is above)")
        return [json.loads(out.read_text())["rows"][0]["img_s"] for out in outputs]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--teacher", default="resnet32x4")
    parser.add_argument("--student", default="resnet8x4")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (compilation, CUDA graph capture)")
    parser.add_argument("--images", type=int, default=4096, help="size of the synthetic CIFAR-shaped set")
    parser.add_argument("--batch-size", type=int, default=64, help="the engine's batch (the reference keeps 64)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="reference DataLoader workers")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    add_compile_option(parser)
    parser.add_argument("--teacher-rows", action="store_true", help="also time the MLL teacher, eager and compiled")
    parser.add_argument("--processes", type=int, default=0, help="also time N KD students at once, one process each")
    parser.add_argument("--engine-only", action="store_true", help="one row: the student with --compile's mode")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; --processes splits them)")
    parser.add_argument("--barrier", nargs=2, metavar=("FOLDER", "COUNT"), help=argparse.SUPPRESS)  # --processes
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    args.images = max(args.images, (args.steps + args.warmup + 1) * max(64, args.batch_size))
    return args


def main(argv=None) -> None:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    gen = torch.Generator().manual_seed(0)
    data = ImageSet(torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=gen),
                    torch.randint(0, CLASSES, (args.images,), generator=gen))
    torch.manual_seed(0)
    teacher = models.create(args.teacher, CLASSES)
    rows: list[dict] = []

    def row(name: str, img_s: float) -> None:
        rows.append({"row": name, "img_s": round(img_s, 1)})
        print(f"{name:28s} {img_s:10.1f} img/s", flush=True)

    modes = [args.compile] if args.engine_only else list(dict.fromkeys(["off", args.compile]))
    if not args.engine_only:
        row("reference (student)", reference_loop(data, teacher, models.create(args.student, CLASSES), device,
                                                  args.steps, args.warmup, 64, args.workers))
    for kind in ("student", "teacher") if args.teacher_rows else ("student",):
        for mode in modes:
            run = engine_run(kind, data, teacher, args, device, mode)
            barrier = (Path(args.barrier[0]), int(args.barrier[1])) if args.barrier else None
            row(f"{kind} {'eager' if mode == 'off' else mode}",
                engine_rate(run, device, args.steps, args.warmup, barrier))
    if args.processes:
        rates = packed_rates(args, args.processes)
        row(f"{args.processes} processes (student {args.compile}), total", sum(rates))
    reference = rows[0]["img_s"] if not args.engine_only else None
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__, "teacher": args.teacher, "student": args.student, "steps": args.steps,
        "warmup": args.warmup, "batch_size": args.batch_size, "precision": args.precision,
        "rows": [{**r, "vs_reference": round(r["img_s"] / reference, 2)} if reference else r for r in rows],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
