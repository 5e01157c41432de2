"""Honest splits: a seeded class-stratified validation hold-out, few-shot subsets, zero-shot class removal."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from distill.data.base import LabelledImages, RawDataset
from distill.errors import UserError


@dataclass(frozen=True)
class DataSplits:
    """What a run trains and evaluates on. The teacher trains on `train`, the student on `student_train`;
    searches decide on `val`; `test` is for the final report only."""

    name: str
    class_names: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    train: LabelledImages
    student_train: LabelledImages
    val: LabelledImages
    test: LabelledImages
    omitted_classes: tuple[int, ...] = ()
    fingerprint: str = ""  # the dataset's (`RawDataset.fingerprint`): what a cached teacher was trained on

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def stratified_split(labels: torch.Tensor, held_out: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held-out) indices, `held_out` of them drawn per class in proportion, seeded."""
    everything = np.arange(len(labels))
    if held_out == 0:
        return torch.from_numpy(everything), torch.from_numpy(everything[:0])
    classes = int(labels.unique().numel())
    if not classes <= held_out <= len(labels) - classes:
        raise UserError(
            f"validation size {held_out} must lie between {classes} and {len(labels) - classes} "
            f"for {len(labels)} training images in {classes} classes"
        )
    from sklearn.model_selection import train_test_split  # lazy: sklearn takes ~1 s to import

    try:
        kept, out = train_test_split(everything, test_size=held_out, stratify=labels.numpy(), random_state=seed)
    except ValueError as err:  # e.g. a class with a single image cannot be on both sides
        raise UserError(f"cannot split {len(labels)} images by class: {str(err).splitlines()[0]}") from None
    return torch.from_numpy(np.sort(kept)), torch.from_numpy(np.sort(out))


def few_shot(images: LabelledImages, fraction: float, mode: str, seed: int) -> LabelledImages:
    """The part of `images` a few-shot student sees: a stratified sample, or the first N in file order."""
    if not 0.0 < fraction <= 1.0:
        raise UserError(f"few-shot fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return images
    count = max(1, round(fraction * len(images)))
    if mode == "first":
        return images.subset(torch.arange(count))
    if mode != "stratified":
        raise UserError(f"unknown few-shot mode {mode!r}; choose 'stratified' or 'first'")
    classes = int(images.labels.unique().numel())
    if not classes <= count <= len(images) - classes:
        raise UserError(
            f"few-shot fraction {fraction} keeps {count} of {len(images)} images; a stratified sample "
            f"needs between {classes} and {len(images) - classes} (or use --few-shot-mode first)"
        )
    kept, _ = stratified_split(images.labels, len(images) - count, seed)
    return images.subset(kept)


def drop_classes(images: LabelledImages, classes: tuple[int, ...], num_classes: int) -> LabelledImages:
    """`images` without the listed classes (zero-shot: the student never sees them)."""
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise UserError(f"zero-shot classes {bad} are outside 0..{num_classes - 1}")
    if len(set(classes)) >= num_classes:
        raise UserError("zero-shot must leave the student at least one class")
    keep = ~torch.isin(images.labels, torch.tensor(classes, dtype=torch.int64))
    return images.subset(keep.nonzero().squeeze(1))


def make_splits(
    raw: RawDataset,
    val_size: int | None,
    seed: int,
    few_shot_fraction: float = 1.0,
    few_shot_mode: str = "stratified",
    zero_shot_classes: tuple[int, ...] = (),
) -> DataSplits:
    """Hold out validation from train, then derive the student's training set from what remains."""
    held_out = raw.default_val_size if val_size is None else val_size
    if held_out < 0:
        raise UserError(f"validation size must be >= 0, got {held_out}")
    kept, val = stratified_split(raw.train.labels, held_out, seed)
    train = raw.train.subset(kept)
    student = few_shot(train, few_shot_fraction, few_shot_mode, seed)
    if zero_shot_classes:
        student = drop_classes(student, tuple(zero_shot_classes), raw.num_classes)
    return DataSplits(
        raw.name, raw.class_names, raw.mean, raw.std, train, student,
        raw.train.subset(val), raw.test, tuple(sorted(set(zero_shot_classes))), raw.fingerprint,
    )
