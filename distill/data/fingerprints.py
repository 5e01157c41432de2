"""A dataset's fingerprint: a short hash that changes when the data a run trains on changes.

Whatever is cached by what it was trained on (the MLL teacher) keys on it, so a teacher of one tree or of one
version of a CIFAR folder is never handed to a search on another. Each dataset loader says how its data is
identified: official md5s, the content of its files, the parameters that generate it, or a tree's listing.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

LENGTH = 16  # hex digits kept
STAT_THREADS = 32  # files stat-ed at once (network storage answers many requests in parallel)


def of_parts(*parts: object) -> str:
    """The hash of JSON-serialisable parts (names, md5s, generator parameters)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:LENGTH]


def of_tensors(*tensors: torch.Tensor) -> str:
    """The hash of tensors' shapes, types and bytes (a dataset small enough to hold in memory)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()[:LENGTH]


def of_file_contents(paths: Iterable[Path]) -> str:
    """The hash of files' names and bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:LENGTH]


def listing(path: str) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_size, status.st_mtime_ns


def of_tree(root: Path, paths: Sequence[str]) -> str:
    """The hash of every file's path relative to `root`, size and modification time: an image replaced, added,
    removed, moved to another class or edited in place changes it, without reading any image."""
    with ThreadPoolExecutor(max_workers=STAT_THREADS) as pool:
        stats = list(pool.map(listing, paths, chunksize=256))
    digest = hashlib.sha256()
    for path, (size, mtime) in zip(paths, stats):
        digest.update(f"{os.path.relpath(path, root)}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()[:LENGTH]
