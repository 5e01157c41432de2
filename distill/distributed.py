"""Data-parallel training across processes (DDP), read from `torch.distributed`: nothing here starts a process group.

A run built inside an initialised process group (Ray Train's `TorchTrainer` workers, or `torchrun`) trains data
parallel: each worker draws a disjoint, equal share of every epoch's shuffled order at an equal share of the batch,
the trained modules' gradients are averaged by DDP, and what must be global (class centroids, the loss sums that
are logged and checked for NaN) is summed across the workers. Outside a process group every function here is the
identity, so single-process runs are unchanged bit for bit.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from distill.errors import UserError


def world() -> tuple[int, int]:
    """(this worker's rank, the number of workers); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_distributed() -> bool:
    return world()[1] > 1


def sum_across_workers(*tensors: torch.Tensor) -> None:
    """Sum each tensor in place over the workers (one collective call per tensor; a no-op in one process)."""
    if not is_distributed():
        return
    for tensor in tensors:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def shard(order: torch.Tensor, train: bool) -> torch.Tensor:
    """This worker's share of an epoch's sample order: every size-th sample from its rank. Training first cuts
    the order to a multiple of the workers, so each takes the same number of steps (DDP needs every worker in
    every step); evaluation keeps every sample, so the shards may differ by one."""
    rank, size = world()
    if size == 1:
        return order
    if train:
        order = order[: len(order) // size * size]
    return order[rank::size]


def shard_size(images: int, train: bool) -> int:
    """How many of `images` this worker's shard holds (see `shard`)."""
    rank, size = world()
    if train:
        return images // size
    return len(range(rank, images, size))


def per_worker_batch(batch_size: int) -> int:
    """Each worker's share of the recipe's (global) batch, so the learning rate keeps meaning what it says."""
    _, size = world()
    if batch_size % size:
        raise UserError(f"the batch size {batch_size} does not split evenly over {size} workers: give a multiple "
                        f"of {size}")
    return batch_size // size


def data_parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` under DistributedDataParallel (gradients averaged across workers), or `module` itself in one
    process. Its frozen submodules (a teacher) hold no gradients and take no part. BatchNorm keeps per-worker batch
    statistics, as torchvision's ImageNet recipe does by default (its --sync-bn is off)."""
    if not is_distributed():
        return module
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def share_buffers(module: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm's running statistics) to every worker: DDP syncs them at each forward, so
    only the last step's local update differs, and after this every worker evaluates and saves the same net."""
    if not is_distributed():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)
