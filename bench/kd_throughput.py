"""KD training throughput: this engine vs. a loop written the way published KD code does it.

Both loops distil resnet8x4 from resnet32x4 (by default) with gamma*CE + alpha*KD on CIFAR-shaped
images, in the same process, and report training images per second and their ratio.
  engine     the whole uint8 set on the device, crop+flip+normalise batched there, bf16 autocast
             and channels_last on CUDA (optionally torch.compile)
  reference  torch DataLoader over PIL images with per-image torchvision transforms
             (RandomCrop(32, 4), RandomHorizontalFlip, ToTensor, Normalize), fp32, batch 64
Usage: python -m bench.kd_throughput [--device cuda] [--steps 50] [--images 10000]
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from distill import models
from distill.config import OptimConfig, RuntimeConfig, StudentJob
from distill.data import DataSplits, ImageSet
from distill.engine import resolve_device
from distill.losses import kd_divergence
from distill.runs import build_student_run

MEAN, STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)


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


def engine_loop(data: ImageSet, teacher, args, device, steps: int, warmup: int) -> float:
    """Images/s of this engine's student run (the same objective and optimiser)."""
    splits = DataSplits("bench", tuple(str(i) for i in range(100)), MEAN, STD, data, data, data.subset(torch.arange(64)), data)
    job = StudentJob(arch=args.student, teacher_arch=args.teacher,  # KD at T 4, alpha 0.9, CE 0.1
                     optim=OptimConfig(epochs=1, batch_size=args.engine_batch_size),
                     runtime=RuntimeConfig(device=str(device), compile=args.compile, precision=args.precision))
    run = build_student_run(job, splits, teacher=teacher)
    trainer = run.trainer
    timing = {}

    def on_step(step: int, total: int) -> None:
        if step == warmup:
            sync(device)
            timing["start"] = time.perf_counter()
        if step == warmup + steps:
            sync(device)
            timing["end"] = time.perf_counter()
            raise StopIteration

    trainer.on_step = on_step
    try:
        trainer.train_epoch()
    except StopIteration:
        pass
    return steps * args.engine_batch_size / (timing["end"] - timing["start"])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--teacher", default="resnet32x4")
    parser.add_argument("--student", default="resnet8x4")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per loop")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--images", type=int, default=4096, help="size of the synthetic CIFAR-shaped set")
    parser.add_argument("--engine-batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="reference DataLoader workers")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    device = resolve_device(args.device)
    needed = (args.steps + args.warmup + 1) * max(64, args.engine_batch_size)
    if args.images < needed:
        args.images = needed
    gen = torch.Generator().manual_seed(0)
    data = ImageSet(torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=gen),
                    torch.randint(0, 100, (args.images,), generator=gen))
    torch.manual_seed(0)
    teacher = models.create(args.teacher, 100)
    reference = reference_loop(data, teacher, models.create(args.student, 100), device, args.steps, args.warmup, 64, args.workers)
    engine = engine_loop(data, teacher, args, device, args.steps, args.warmup)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__, "teacher": args.teacher, "student": args.student, "steps": args.steps,
        "reference_img_s": round(reference, 1), "engine_img_s": round(engine, 1),
        "engine_batch_size": args.engine_batch_size, "precision": args.precision, "compile": args.compile,
        "ratio": round(engine / reference, 2),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
