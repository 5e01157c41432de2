"""`python -m distill.models`: list the zoo, check that a checkpoint loads, or draw its Eigen-CAM maps."""
from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from distill.cli import ArgumentParser, run_cli
from distill.config import DataConfig
from distill.models import create, load_weights, names, num_parameters
from distill.models.checkpoints import checkpoint_classes
from distill.models.registry import input_side


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m distill.models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="every architecture with its parameter count and feature list")
    listing.add_argument("--num-classes", type=int, default=100,
                         help="classes of the classifier the parameter counts include (default: 100, CIFAR-100)")
    check = sub.add_parser("check", help="load a checkpoint strictly and print what it holds")
    check.add_argument("arch", help=f"one of {', '.join(names())}")
    check.add_argument("checkpoint", help="a {'model': state_dict} .pth file or a bare state dict")
    check.add_argument("--num-classes", type=int,
                       help="classes of the model to load into (default: what the file records, else the width of "
                       "its classifier)")
    cam = sub.add_parser("cam", help="Eigen-CAM maps of a checkpoint over validation images, as a PNG grid")
    cam.add_argument("arch", help=f"one of {', '.join(names())}")
    cam.add_argument("checkpoint", help="a {'model': state_dict} .pth file of that architecture")
    cam.add_argument("--dataset", default=DataConfig.dataset, help="the data the checkpoint was trained on")
    cam.add_argument("--data-dir", default=DataConfig.data_dir, help="folder holding the dataset's files")
    cam.add_argument("--feature", help="feature name or index (default: the last convolutional stage)")
    cam.add_argument("--images", type=int, default=16, help="how many validation images, spread over classes")
    cam.add_argument("--seed", type=int, default=0, help="which images")
    cam.add_argument("--out", required=True, help="the PNG to write")
    return parser.parse_args(argv)


def draw_cam(args: argparse.Namespace) -> int:
    from pathlib import Path

    from distill.data import Normalizer, load_splits
    from distill.errors import UserError
    from distill.models.cam import cam_grid, eigen_cam, pick_images

    if args.images < 1:
        raise UserError(f"--images must be positive, got {args.images}")
    splits = load_splits(DataConfig(dataset=args.dataset, data_dir=args.data_dir))
    model = load_weights(create(args.arch, splits.num_classes), args.checkpoint, args.arch)
    chosen = splits.val.subset(pick_images(splits.val.labels, args.images, args.seed)).to_images()
    normalised = Normalizer(splits.mean, splits.std, "cpu")(chosen.images)
    maps = {args.arch: eigen_cam(model, normalised, args.feature)}
    path = cam_grid(chosen.images, maps, Path(args.out), [str(int(y)) for y in chosen.labels])
    print(f"wrote {path}: Eigen-CAM of {args.checkpoint} on {len(chosen)} {splits.name} validation images")
    return 0


def feature_summary(arch: str, num_classes: int) -> str:
    """`name CxHxW` for each feature of `arch` at the input size it was built for."""
    model = create(arch, num_classes).eval()
    side = input_side(arch)
    with torch.no_grad():
        _, feats = model(torch.zeros(1, 3, side, side), with_features=True)
    return f"at {side}x{side}: " + ", ".join(
        f"{n} {'x'.join(map(str, f.shape[1:]))}" for n, f in zip(model.feature_names, feats))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.command == "list":
        print(f"{'architecture':12s} {'parameters':>12s}  features (parameters with a {args.num_classes}-class "
              "classifier)")
        for arch in names():
            params = num_parameters(create(arch, args.num_classes))
            print(f"{arch:12s} {params:>12,d}  {feature_summary(arch, args.num_classes)}")
        return 0
    if args.command == "cam":
        return draw_cam(args)
    classes = args.num_classes or checkpoint_classes(args.checkpoint)
    model = create(args.arch, classes)
    load_weights(model, args.checkpoint, args.arch)
    print(f"{args.checkpoint}: loads into {args.arch} with {classes} classes ({num_parameters(model):,d} "
          "parameters, strict)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
