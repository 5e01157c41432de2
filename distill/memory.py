"""Sizes that cannot fit are refused before the first allocation, from an estimate made on the `meta` device.

A run holds its nets' and distillers' parameters and buffers (a trained one also its gradients and optimiser
state), one batch's activations, and whatever a distiller builds per step (CRD's negatives: batch × nce_k
embeddings). Each is counted without allocating: parts built on `meta`, activations tallied by a forward of two
images on `meta`. On the CPU it came within 0.88 to 1.48 times the peak memory real runs took
(`bench/memory_estimate.py`, five runs), so it is neither a floor nor a bound: a run is refused only when the
estimate exceeds the memory by more than `SLACK`, beyond the largest overestimate measured, which no run that fits
has reached. Sizes typed by mistake (an NCE queue of 10^8, a critic 10^9 wide) exceed it a thousandfold.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from distill import models
from distill.errors import UserError

TRAINED_COPIES = 3  # a trained parameter, its gradient and its momentum (SGD)
SLACK = 1.25  # refuse above memory × SLACK: the estimate read up to 1/0.88 = 1.14× a real run's peak


class AllocationTally(TorchDispatchMode):
    """What the operations run under it allocate: every new tensor they return (views and in-place results, which
    share their input's memory, are not counted), in total and the largest one."""

    def __init__(self) -> None:
        super().__init__()
        self.total = self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not any(ret.alias_info is not None for ret in func._schema.returns):
            for tensor in (t for t in tree_leaves(out) if isinstance(t, torch.Tensor)):
                size = tensor.numel() * tensor.element_size()
                self.total, self.largest = self.total + size, max(self.largest, size)
        return out


def state_bytes(module: nn.Module, trained: bool) -> int:
    """Parameters and buffers of `module`; a trained module's parameters counted with their gradient and momentum."""
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    buffers = sum(b.numel() * b.element_size() for b in module.buffers())
    return params * (TRAINED_COPIES if trained else 1) + buffers


PROBE_IMAGES = 2  # BatchNorm in training mode needs more than one value per channel


def activation_bytes(arch: str, num_classes: int, image_shape: tuple[int, ...], batch_size: int,
                     trained: bool = True) -> int:
    """What a forward of `batch_size` images through the zoo net `arch` holds at once: every activation when the net
    trains (backward keeps them), only the largest twice over (its input and output) for a frozen net."""
    total, largest = forward_tally(arch, num_classes, tuple(image_shape))
    return (total if trained else 2 * largest) * batch_size // PROBE_IMAGES


@functools.lru_cache(maxsize=None)
def forward_tally(arch: str, num_classes: int, image_shape: tuple[int, ...]) -> tuple[int, int]:
    """(all, largest) bytes one forward of two images allocates through `arch`, on `meta`: measured once per net and
    shape, however many configurations a search checks. Every net of the zoo runs on `meta` (the layer checks
    probe its features there first)."""
    with torch.device("meta"):
        net = models.create(arch, num_classes)
    tally = AllocationTally()
    with torch.no_grad(), tally:
        net(torch.empty(PROBE_IMAGES, *image_shape, device="meta"), with_features=True)
    return tally.total, tally.largest


def available(device: torch.device) -> tuple[int, str]:
    """The memory a run on `device` may use, and what it is: that GPU's, else this machine's (or its cgroup's)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.get_device_properties(index).total_memory, f"the GPU ({torch.cuda.get_device_name(index)})"
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = Path("/sys/fs/cgroup/memory.max")
    if limit.is_file() and limit.read_text().strip().isdigit():
        total = min(total, int(limit.read_text()))
    return total, "this machine"


def shown(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def check_fits(what: str, parts: Iterable[tuple[str, int]], device: torch.device) -> None:
    """A UserError when the estimated `parts` (label, bytes) of a run exceed the memory of `device`, naming the
    largest."""
    parts = dict(parts)
    total, (where_bytes, where) = sum(parts.values()), available(device)
    if total <= where_bytes * SLACK:
        return
    largest = max(parts, key=parts.get)
    raise UserError(f"{what} needs at least {shown(total)} of memory, more than {where} has ({shown(where_bytes)}): "
                    f"{largest} alone take {shown(parts[largest])}; lower the setting behind that part (or the batch "
                    "size)")
