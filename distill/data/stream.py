"""Image files streamed from disk: decoded and augmented by DataLoader workers, normalised on the device.

For sets too large for memory (ImageNet: 1.28 M JPEGs, about 140 GB). Each worker reads a file, decodes it with
TorchCodec (libjpeg-turbo) into a uint8 tensor and applies torchvision's transforms v2 to that tensor: for
training RandomResizedCrop and a horizontal flip, for evaluation a resize of the short side to 256/224 of the crop
and a centre crop, the standard ImageNet recipe. Batches travel to the device as uint8 (a quarter of float32's
bytes) and are normalised there, in the dtype and memory format the nets consume, as the in-memory loader does.
One CPU generator draws the order and each epoch's augmentation seed, so a seed gives the same batches and a resumed
run continues with the batches an uninterrupted one would have drawn, whatever the number of decoding workers.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from distill import distributed
from distill.data.base import ImageSet
from distill.data.loader import BatchSpec, Normalizer, batches_per_epoch, draw_seed, epoch_order

EVAL_RESIZE = 256 / 224  # the short side before the centre crop, relative to the crop (the ImageNet recipe)
DECODE_TIMEOUT_S = 120  # a batch not decoded in this long means a stuck decoding process: an error, not a hang


def default_workers() -> int:
    """DataLoader workers: as many as torch's CPU threads, at most 8. Those are the machine's cores, or in a search
    trial the CPUs Ray gave it (the trainables set the threads so), so packed trials do not oversubscribe a node."""
    return max(1, min(8, torch.get_num_threads()))


def transform(side: int, train: bool):
    """The ImageNet recipe on uint8 tensors: random-resized crop and flip, or resize and centre crop."""
    from torchvision.transforms import v2

    if train:
        return v2.Compose([v2.RandomResizedCrop(side, antialias=True), v2.RandomHorizontalFlip()])
    return v2.Compose([v2.Resize(round(side * EVAL_RESIZE), antialias=True), v2.CenterCrop(side)])


def decode(path: str) -> torch.Tensor:
    """A file as a uint8 [3, H, W] RGB tensor (greyscale and CMYK JPEGs converted), by TorchCodec: the decoder
    PyTorch maintains (torchvision.io's, libjpeg-turbo as well, is deprecated since torchvision 0.29; on a 500 x 375
    JPEG both gave identical pixels at 619 and 655 images/s on one core of the dev machine)."""
    from torchcodec.decoders import decode_image

    return decode_image(path, mode="RGB")


class DecodedFiles(Dataset):
    """(transformed uint8 image, label, position) of a file, asked for as (position, augmentation seed): what a
    DataLoader worker computes. Seeding each image makes its crop and flip a function of the epoch's draw and the
    file alone, whichever worker decodes it and however many there are."""

    def __init__(self, paths: Sequence[str], labels: torch.Tensor, side: int, train: bool) -> None:
        self.paths, self.labels, self.transform = paths, labels, transform(side, train)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        i, seed = item
        # The CPU generator the transforms draw from; torch.manual_seed would also reseed every accelerator backend,
        # which made the loader 15% slower here.
        torch.default_generator.manual_seed(seed)
        try:
            image = decode(self.paths[i])
        except (RuntimeError, ValueError) as err:  # a damaged body behind a sound header: name the file
            raise RuntimeError(f"cannot decode {self.paths[i]}: {str(err).splitlines()[0]}") from None
        return self.transform(image), self.labels[i], i


@dataclass(frozen=True)
class FileSet:
    """A labelled set of image files, read when a loader asks; `side` is the square crop the nets see."""

    paths: tuple[str, ...]
    labels: torch.Tensor  # int64 [N]
    side: int = 224
    posteriors: None = None  # a folder of photographs carries no true posterior

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: torch.Tensor) -> FileSet:
        """The files at `indices`, in that order."""
        return FileSet(tuple(self.paths[i] for i in indices.tolist()), self.labels[indices], self.side)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.side, self.side)

    def to_images(self) -> ImageSet:
        """The files decoded with the evaluation transform into memory (for a few images: pictures, checks)."""
        evaluation = transform(self.side, train=False)
        images = [evaluation(decode(path)) for path in self.paths]
        stacked = torch.stack(images) if images else torch.zeros(0, *self.image_shape, dtype=torch.uint8)
        return ImageSet(stacked, self.labels)

    def loader(self, spec: BatchSpec) -> StreamingLoader:
        return StreamingLoader(self, spec)


class StreamingLoader:
    """Batches of a FileSet with the DeviceLoader's interface: (images, labels) or (images, labels, indices) on
    `device`; `train=True` shuffles, augments and drops the last partial batch; `sharded=True` reads only this
    worker's share of each epoch in a data-parallel run."""

    def __init__(self, files: FileSet, spec: BatchSpec) -> None:
        self.files, self.batch_size, self.train = files, spec.batch_size, spec.train
        self.device = torch.device(spec.device)
        self.normalize = Normalizer(spec.mean, spec.std, self.device)
        self.channels_last, self.dtype, self.indices = spec.channels_last, spec.dtype, spec.indices
        # At least one worker process: decoding in this process would draw its augmentation from (and so disturb)
        # the global generator that the training itself draws from.
        self.workers = max(1, default_workers() if spec.workers is None else spec.workers)
        self.dataset = DecodedFiles(files.paths, files.labels, files.side, spec.train)
        self.posteriors = None
        self.sharded = spec.sharded and distributed.is_distributed()
        self.generator = torch.Generator().manual_seed(spec.seed)
        self.epoch_batches: list[list[tuple[int, int]]] = []  # the persistent DataLoader's batch sampler, refilled
        self.decoders: DataLoader | None = None  # started on the first epoch, then kept for every later one

    @property
    def num_images(self) -> int:
        """The images one epoch reads: the whole set, or this worker's shard of it."""
        return distributed.shard_size(len(self.files), self.train) if self.sharded else len(self.files)

    def __len__(self) -> int:
        return batches_per_epoch(self.num_images, self.batch_size, self.train)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = epoch_order(len(self.files), self.train, self.sharded, self.generator)
        if order is None:
            order = torch.arange(len(self.files))
        # Each image's augmentation seed: the epoch's draw (the same on every worker of a data-parallel run, whose
        # shards are disjoint) plus the file's position.
        epoch_seed = draw_seed(self.generator)
        self.epoch_batches[:] = [[(i, epoch_seed + i) for i in order[b * self.batch_size:(b + 1) * self.batch_size]
                                  .tolist()] for b in range(len(self))]
        if self.decoders is None:
            # Persistent workers: each process is forked once per loader, not once per epoch. Forking a process
            # that runs other threads (a Ray worker's) is the moment a child can inherit a held lock; the timeout
            # turns a decoder that stops answering into an error (a Ray Train run then restarts its workers).
            self.decoders = DataLoader(self.dataset, batch_sampler=self.epoch_batches, num_workers=self.workers,
                                       persistent_workers=True, pin_memory=self.device.type == "cuda",
                                       prefetch_factor=4, timeout=DECODE_TIMEOUT_S)
        for images, labels, positions in self.decoders:
            images = images.to(self.device, non_blocking=True)
            batch = (self.normalize(images, channels_last=self.channels_last, dtype=self.dtype),
                     labels.to(self.device, non_blocking=True))
            yield (*batch, positions.to(self.device, non_blocking=True)) if self.indices else batch

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The random state, so a resumed run draws the same batches."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
