"""`imagefolder` and `imagenet`: torchvision's ImageFolder layout, streamed from disk (`distill.data.stream`).

`--data-dir ROOT` holds `ROOT/train/CLASS/*.JPEG` and `ROOT/val/CLASS/*.JPEG` (ImageNet as its devkit script lays it
out). The validation split for tuning is held out of `train` (seeded, class-stratified, `--val-size`); the official
`val` folder plays the test set, read once for the final report. `imagenet` is the same layout required to have
ImageNet's 1,000 classes. Both use ImageNet's mean and std, and take `size=` (the square crop the nets see,
224 by default), e.g. `imagefolder:size=64`.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from distill.data import fingerprints
from distill.data.base import DATASETS, RawDataset
from distill.data.stream import FileSet
from distill.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_CLASSES = 1000
IMAGENET_VAL_PER_CLASS = 10  # 10,000 validation images held out of ImageNet's train
DEFAULT_VAL_FRACTION = 0.1  # of train, for any other ImageFolder tree
HEADER_THREADS = 32  # files whose first bytes are read at once by the check for unreadable images


def scan(folder: Path, classes: list[str] | None = None) -> tuple[list[str], FileSet]:
    """The class folders of `folder` (or the given ones, in that order) and every image file under them."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder: an ImageFolder tree needs train/CLASS/*.JPEG and val/CLASS/*.JPEG")
    try:
        found, _ = find_classes(folder)
    except FileNotFoundError:
        raise UserError(f"{folder} has no class folders (it should hold one folder of images per class)") from None
    if classes is not None and found != classes:
        missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
        raise UserError(f"the class folders of {folder} differ from train's: missing {missing[:5]}, extra {extra[:5]}")
    try:
        samples = make_dataset(folder, {name: i for i, name in enumerate(found)}, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as err:
        raise UserError(f"{folder}: {str(err).splitlines()[0]}") from None
    paths = tuple(path for path, _ in samples)
    check_readable(folder, paths)
    return found, FileSet(paths, torch.tensor([label for _, label in samples], dtype=torch.int64))


def image_format(path: str) -> str | None:
    """The format a file's first bytes announce among those the decoder reads (JPEG, PNG, WebP, GIF); None for
    anything else, an empty file or one that cannot be opened."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return None
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    return None


def check_readable(folder: Path, paths: tuple[str, ...]) -> None:
    """Refuse a tree holding a file the decoder cannot read, before anything trains: a search would otherwise fail
    its trials one by one when a worker reaches the file. Reads 12 bytes of each file, on threads (I/O bound, and
    network storage answers many requests at once); a file whose header is sound but whose body is damaged still
    fails the run that decodes it, with its path named."""
    with ThreadPoolExecutor(max_workers=HEADER_THREADS) as pool:
        unreadable = [path for path, kind in zip(paths, pool.map(image_format, paths, chunksize=256)) if kind is None]
    if unreadable:
        shown = ", ".join(str(Path(p).relative_to(folder)) for p in unreadable[:3])
        raise UserError(f"{len(unreadable)} of the {len(paths)} files under {folder} are not images the decoder reads "
                        f"(JPEG, PNG, WebP or GIF), e.g. {shown}: remove or replace them")


def image_folder(data_dir: Path, name: str, size: str = "224", classes: int | None = None) -> RawDataset:
    """train/ and val/ of `data_dir` as a streamed dataset; `classes`, when given, is the count it must have."""
    try:
        import torchcodec  # noqa: F401  (the decoder the workers use)
    except ImportError:
        raise UserError(f"dataset {name} decodes its images with TorchCodec: pip install 'kdtune[imagenet]' "
                        "(torchcodec>=0.16, which needs torch>=2.11)") from None
    try:
        side = int(size)
    except ValueError:
        raise UserError(f"dataset {name}: size must be a whole number of pixels, got {size!r}") from None
    if side < 8:
        raise UserError(f"dataset {name}: size={side} is too small a crop (at least 8 pixels)")
    class_names, train = scan(data_dir / "train")
    _, test = scan(data_dir / "val", class_names)
    if classes is not None and len(class_names) != classes:
        raise UserError(f"{data_dir / 'train'} has {len(class_names)} class folders; {name} has {classes}")
    held_out = IMAGENET_VAL_PER_CLASS * len(class_names) if name == "imagenet" else max(
        len(class_names), round(DEFAULT_VAL_FRACTION * len(train)))
    sized = lambda files: FileSet(files.paths, files.labels, side)  # noqa: E731
    fingerprint = fingerprints.of_parts(name, fingerprints.of_tree(data_dir, train.paths + test.paths))
    return RawDataset(name, sized(train), sized(test), tuple(class_names), IMAGENET_MEAN, IMAGENET_STD, held_out,
                      fingerprint)


def folder_loader(name: str, classes: int | None, nothing_to_download: str):
    """The registered loader of an ImageFolder dataset: no download, one parameter (size)."""

    def load(data_dir: Path, download: bool, verify_md5: bool, **options: str) -> RawDataset:
        if download:
            raise UserError(nothing_to_download)
        unknown = sorted(set(options) - {"size"})
        if unknown:
            raise UserError(f"dataset {name}: unknown parameter {unknown[0]} (it takes size=PIXELS)")
        return image_folder(data_dir, name, classes=classes, **options)

    return load


DATASETS.register("imagefolder")(folder_loader(
    "imagefolder", None, "an ImageFolder tree is yours to put in place under --data-dir; nothing is downloaded"))
DATASETS.register("imagenet")(folder_loader(
    "imagenet", IMAGENET_CLASSES, "ImageNet cannot be downloaded for you: put its train/ and val/ class folders (the "
    "devkit layout) under --data-dir"))
