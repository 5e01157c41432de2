"""Batches from a uint8 dataset that lives on the training device, augmented there in whole batches.

No per-image Python and no host round trip in the hot loop: a batch is one index gather (random
crop with zero padding and horizontal flip fused into the gather's indices), one cast and one
normalising multiply-add. The random numbers come from a CPU generator, so a seed gives the same
batches on CPU and GPU and the loader's state is a small tensor to checkpoint.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F

from distill import distributed

if TYPE_CHECKING:  # the sets build their loaders; this module needs their type only (no import cycle)
    from distill.data.base import ImageSet

PAD = 4


@dataclass(frozen=True)
class BatchSpec:
    """How a set is walked: normalisation, batch size, device; `train` shuffles, augments and drops the last
    partial batch, from `seed`; the batches' memory format and dtype (what the net consumes, so no step converts
    them); `indices` adds each sample's position in the set (what CRD's memory bank is keyed by); `workers`
    decoding processes for sets streamed from files; `sharded` walks only this worker's share of each epoch in a
    data-parallel run (`distill.distributed.shard`)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    batch_size: int
    device: torch.device | str = "cpu"
    train: bool = True
    seed: int = 0
    channels_last: bool = False
    dtype: torch.dtype = torch.float32
    indices: bool = False
    workers: int | None = None
    sharded: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch size must be positive, got {self.batch_size}")


class Loader(Protocol):
    """What the engine walks: batches of (images, labels) or (images, labels, indices), resumable."""

    posteriors: torch.Tensor | None  # the true P*(y|x) in walk order, when the set knows it

    @property
    def num_images(self) -> int: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def crop_flip_indices(
    batch: int, height: int, width: int, pad: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row [B, H] and column [B, W] indices into the padded images; flipped images read columns backwards."""
    shifts = torch.randint(0, 2 * pad + 1, (batch, 2), generator=generator)
    flip = torch.rand(batch, generator=generator) < 0.5
    rows = shifts[:, :1] + torch.arange(height)
    cols = shifts[:, 1:] + torch.arange(width)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    return rows, cols


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, pad: int = PAD) -> torch.Tensor:
    """RandomCrop(size, padding=pad) + RandomHorizontalFlip for a whole uint8 batch on its device."""
    b, c, h, w = images.shape
    rows, cols = crop_flip_indices(b, h, w, pad, generator)
    rows, cols = rows.to(images.device, non_blocking=True), cols.to(images.device, non_blocking=True)
    padded = F.pad(images, (pad, pad, pad, pad))
    batch_idx = torch.arange(b, device=images.device)[:, None, None, None]
    chan_idx = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch_idx, chan_idx, rows[:, None, :, None], cols[:, None, None, :]]


def batches_per_epoch(images: int, batch_size: int, train: bool) -> int:
    """Training drops the last partial batch (BatchNorm needs > 1 sample) unless it is the only one; evaluation
    keeps every image."""
    if train and images >= batch_size:
        return images // batch_size
    return -(-images // batch_size)


class Normalizer:
    """uint8 -> (x / 255 - mean) / std as one multiply-add in float32, handed over in the dtype and memory format
    the net consumes (bfloat16 and channels-last under CUDA's defaults)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device | str) -> None:
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = mean_t / std_t

    def __call__(self, images: torch.Tensor, channels_last: bool = False,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
        out = torch.addcmul(-self.shift, images.to(torch.float32), self.scale)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        return out.to(dtype=dtype, memory_format=memory_format)


def epoch_order(images: int, train: bool, sharded: bool, generator: torch.Generator) -> torch.Tensor | None:
    """The sample order of one epoch: shuffled for training, None for the in-order walk of a whole set, and this
    worker's share of either when `sharded`."""
    order = torch.randperm(images, generator=generator) if train else None
    if sharded:
        order = distributed.shard(torch.arange(images) if order is None else order, train)
    return order


def draw_seed(generator: torch.Generator) -> int:
    """One seed from the loader's generator: the same draw on every worker of a data-parallel run."""
    return int(torch.randint(2**62, (1,), generator=generator))


def augmentation_generator(generator: torch.Generator) -> torch.Generator:
    """A generator of this worker's own augmentation draws, seeded from the epoch's shared draw and the rank."""
    rank, _ = distributed.world()
    return torch.Generator().manual_seed(draw_seed(generator) + rank)


class DeviceLoader:
    """Batches (`BatchSpec`) of an ImageSet held on the spec's device. `train=True` shuffles, augments and drops
    the last partial batch (BatchNorm needs > 1 sample); `train=False` walks the set in order, unaugmented,
    keeping every image."""

    def __init__(self, data: ImageSet, spec: BatchSpec) -> None:
        self.images = data.images.to(spec.device)
        self.labels = data.labels.to(spec.device)
        self.posteriors = None if data.posteriors is None else data.posteriors.to(spec.device)  # in walk order
        self.normalize = Normalizer(spec.mean, spec.std, spec.device)
        self.batch_size = spec.batch_size
        self.train = spec.train
        self.channels_last = spec.channels_last
        self.dtype = spec.dtype
        self.indices = spec.indices
        self.sharded = spec.sharded and distributed.is_distributed()
        if self.sharded and self.posteriors is not None and not spec.train:
            self.posteriors = self.posteriors[distributed.shard(torch.arange(len(self.labels)), train=False)]
        self.generator = torch.Generator().manual_seed(spec.seed)

    @property
    def num_images(self) -> int:
        """The images one epoch walks: the whole set, or this worker's shard of it."""
        total = self.labels.shape[0]
        return distributed.shard_size(total, self.train) if self.sharded else total

    def __len__(self) -> int:
        return batches_per_epoch(self.num_images, self.batch_size, self.train)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = epoch_order(self.labels.shape[0], self.train, self.sharded, self.generator)
        # Every worker draws the same order from the same generator; each augments its shard with its own stream.
        augment = augmentation_generator(self.generator) if self.sharded and self.train else self.generator
        for i in range(len(self)):
            start = i * self.batch_size
            if order is None:
                idx = slice(start, start + self.batch_size)
                images = self.images[idx]
            else:
                idx = order[start:start + self.batch_size].to(self.images.device, non_blocking=True)
                images = self.images[idx]
                if self.train:
                    images = random_crop_flip(images, augment)
            batch = (self.normalize(images, channels_last=self.channels_last, dtype=self.dtype), self.labels[idx])
            if self.indices:
                positions = idx if order is not None else torch.arange(
                    start, min(start + self.batch_size, self.num_images), device=self.labels.device)
                batch = (*batch, positions)
            yield batch

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The random state, so a resumed run draws the same batches."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
