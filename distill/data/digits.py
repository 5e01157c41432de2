"""scikit-learn's bundled handwritten digits (1,797 real 8x8 images), shaped like CIFAR for the zoo.

It needs no download, so it drives the offline demo and the learning tests. The images are
upsampled to 32x32 and repeated over three channels; a fixed stratified 20% is the test set.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from distill.data import fingerprints
from distill.data.base import DATASETS, ImageSet, RawDataset

TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 0  # part of the dataset's definition, so every run shares one test set
DIGITS_VAL_SIZE = 180
SIDE = 32


def to_cifar_shape(pixels: torch.Tensor) -> torch.Tensor:
    """float [N, 8, 8] in 0..16 -> uint8 [N, 3, 32, 32] by bilinear upsampling."""
    scaled = pixels.unsqueeze(1) * (255.0 / 16.0)
    large = F.interpolate(scaled, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    return large.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


@DATASETS.register("digits")
def digits(data_dir: Path, download: bool, verify_md5: bool) -> RawDataset:
    """The bundled digits; `data_dir`, `download` and `verify_md5` do not apply."""
    from sklearn.datasets import load_digits  # lazy: sklearn takes ~1 s to import
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = to_cifar_shape(torch.as_tensor(bunch.images, dtype=torch.float32))
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    train_idx, test_idx = train_test_split(
        torch.arange(len(labels)).numpy(), test_size=TEST_FRACTION,
        stratify=labels.numpy(), random_state=TEST_SPLIT_SEED,
    )
    train = ImageSet(images[train_idx], labels[train_idx])
    test = ImageSet(images[test_idx], labels[test_idx])
    pixels = train.images[:, 0].float().div(255.0)
    mean, std = pixels.mean().item(), pixels.std().item()
    names = tuple(str(name) for name in bunch.target_names)
    fingerprint = fingerprints.of_tensors(train.images, train.labels, test.images, test.labels)
    return RawDataset("digits", train, test, names, (mean,) * 3, (std,) * 3, DIGITS_VAL_SIZE, fingerprint)
