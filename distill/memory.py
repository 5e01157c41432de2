"""Sizes that cannot fit are refused before the first allocation, from an estimate made on the `meta` device.

A run holds its nets' and distillers' parameters and buffers (a trained one also its gradients and optimiser
state), one batch's activations, and whatever a distiller builds per step (CRD's negatives: batch × nce_k
embeddings). Each is counted without allocating: parts built on `meta`, activations tallied by a forward of one
image on `meta`. The estimate is a floor, not a bound (the allocator, the data and the framework add to it), so
only a run that cannot fit even so is refused.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from distill.errors import UserError

TRAINED_COPIES = 3  # a trained parameter, its gradient and its momentum (SGD)


class AllocationTally(TorchDispatchMode):
    """Sums the bytes of every tensor an operation returns: what one forward on `meta` would allocate."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.bytes += sum(t.numel() * t.element_size() for t in tree_leaves(out) if isinstance(t, torch.Tensor))
        return out


def state_bytes(module: nn.Module, trained: bool) -> int:
    """Parameters and buffers of `module`; a trained module's parameters counted with their gradient and momentum."""
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    buffers = sum(b.numel() * b.element_size() for b in module.buffers())
    return params * (TRAINED_COPIES if trained else 1) + buffers


def activation_bytes(net: nn.Module, image_shape: tuple[int, ...], batch_size: int) -> int:
    """What a forward of `batch_size` images through `net` (on `meta`) allocates, from one image's tally; 0 for a
    net whose forward `meta` cannot run (its parameters are still counted)."""
    tally = AllocationTally()
    try:
        with torch.no_grad(), tally:
            net(torch.empty(1, *image_shape, device="meta"), with_features=True)
    except (NotImplementedError, RuntimeError):
        return 0
    return tally.bytes * batch_size


def available() -> tuple[int, str]:
    """The memory a run here may use, and what it is: the first GPU's, else this machine's (or its cgroup's)."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory, f"the GPU ({torch.cuda.get_device_name(0)})"
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


def check_fits(what: str, parts: Iterable[tuple[str, int]]) -> None:
    """A UserError when the estimated `parts` (label, bytes) of a run exceed the memory here, naming the largest."""
    parts = dict(parts)
    total, (where_bytes, where) = sum(parts.values()), available()
    if total <= where_bytes:
        return
    largest = max(parts, key=parts.get)
    raise UserError(f"{what} needs at least {shown(total)} of memory, more than {where} has ({shown(where_bytes)}): "
                    f"{largest} alone take {shown(parts[largest])}; lower the setting behind that part (or the batch size)")
