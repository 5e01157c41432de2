"""How fast does an ImageFolder tree stream? Images/s of the training loader (decode, RandomResizedCrop 224, flip,
uint8 batch, normalise) per number of DataLoader workers, on JPEGs of ImageNet's typical size.

The tree is generated: smooth random colour fields with mild noise at 500 x 375 (ImageNet's most common size),
saved at JPEG quality 90, so their decoding costs what photographs cost roughly. Every worker count reads the same
files; the first pass over them is untimed (the page cache then holds them, as a node's local SSD or cache would).
It also times the check every ImageFolder tree passes before anything trains (12 bytes of each file read, on
threads), in files/s over the same files.
Usage: python -m bench.imagefolder_throughput [--images 512] [--workers 1 2] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from distill.data import BatchSpec, load_raw
from distill.data.imagefolder import IMAGENET_MEAN, IMAGENET_STD, check_readable


def write_photographs(root: Path, images: int, classes: int = 8, width: int = 500, height: int = 375) -> None:
    """`images` JPEGs under root/train/CLASS and one per class under root/val/CLASS."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, count in (("train", images), ("val", classes)):
        for i in range(count):
            folder = root / split / f"class{i % classes}"
            folder.mkdir(parents=True, exist_ok=True)
            coarse = torch.rand(1, 3, 6, 8, generator=g)
            field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0]
            pixels = (255 * field + 12 * torch.randn(3, height, width, generator=g)).clamp(0, 255).to(torch.uint8)
            Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(folder / f"{i}.JPEG", quality=90)


def rate(files, workers: int, batch: int) -> float:
    """Training images/s of one pass after an untimed one."""
    loader = files.loader(BatchSpec(IMAGENET_MEAN, IMAGENET_STD, batch, "cpu", train=True, workers=workers))
    for _ in loader:
        pass
    start, seen = time.perf_counter(), 0
    for images, _ in loader:
        seen += len(images)
    return seen / (time.perf_counter() - start)


def header_check_rate(folder: Path, paths: tuple[str, ...], repeats: int = 5) -> float:
    """Files/s of the readable-image check over `paths` (from the page cache), the best of `repeats` passes."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        check_readable(folder, paths)
        best = min(best, time.perf_counter() - start)
    return len(paths) / best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        write_photographs(Path(folder), args.images)
        files = load_raw("imagefolder", folder).train
        megabytes = sum(Path(p).stat().st_size for p in files.paths) / len(files) / 1e6
        rows = [{"workers": w, "img_s": round(rate(files, w, args.batch_size), 1)} for w in args.workers]
        checked = round(header_check_rate(Path(folder), files.paths))
    result = {"images": args.images, "mean_jpeg_mb": round(megabytes, 3), "size": "500x375", "crop": 224, "rows": rows,
              "header_check_files_s": checked}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
