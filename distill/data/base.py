"""The in-memory form every dataset takes: uint8 images [N, 3, H, W] and int64 labels."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from distill.data.loader import BatchSpec, DeviceLoader, Loader
from distill.registry import Registry


@dataclass(frozen=True)
class ImageSet:
    """A labelled set of uint8 images, kept as tensors so it can move to a device in one copy."""

    images: torch.Tensor  # uint8 [N, 3, H, W]
    labels: torch.Tensor  # int64 [N]
    posteriors: torch.Tensor | None = None  # float32 [N, K]: the true P*(y|x) of each image, when it is known

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must be one per image")
        if self.posteriors is not None and (self.posteriors.dim() != 2 or len(self.posteriors) != len(self.labels)):
            raise ValueError("posteriors must be one distribution [N, K] per image")

    def __len__(self) -> int:
        return self.labels.shape[0]

    def subset(self, indices: torch.Tensor) -> ImageSet:
        """The images at `indices`, in that order."""
        posteriors = None if self.posteriors is None else self.posteriors[indices]
        return ImageSet(self.images[indices], self.labels[indices], posteriors)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images a net sees."""
        return tuple(self.images.shape[1:])

    def to_images(self) -> ImageSet:
        return self

    def loader(self, spec: BatchSpec) -> Loader:
        """The in-memory set on the spec's device, batched there (`spec.workers` is for sets streamed from files)."""
        return DeviceLoader(self, spec)


class LabelledImages(Protocol):
    """What splits, loaders and runs need of a set: an in-memory ImageSet, or files streamed from disk."""

    labels: torch.Tensor
    posteriors: torch.Tensor | None

    def __len__(self) -> int: ...

    def subset(self, indices: torch.Tensor) -> LabelledImages: ...

    @property
    def image_shape(self) -> tuple[int, int, int]: ...

    def to_images(self) -> ImageSet: ...

    def loader(self, spec: BatchSpec) -> Loader: ...


@dataclass(frozen=True)
class RawDataset:
    """A dataset as its files define it: official train and test sets plus normalisation constants."""

    name: str
    train: LabelledImages
    test: LabelledImages
    class_names: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_val_size: int
    fingerprint: str  # changes when the data changes (`distill.data.fingerprints`); caches key on it

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class DatasetLoader(Protocol):
    """Reads a dataset from `data_dir`, downloading first when asked, checking md5s when asked."""

    def __call__(self, data_dir: Path, download: bool, verify_md5: bool) -> RawDataset: ...


DATASETS: Registry[DatasetLoader] = Registry("dataset")
