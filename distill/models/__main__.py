"""`python -m distill.models`: list the zoo, or check that a checkpoint loads into an architecture."""
from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from distill.cli import ArgumentParser, run_cli
from distill.models import create, load_weights, names, num_parameters


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m distill.models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="every architecture with its parameter count and feature list")
    listing.add_argument("--num-classes", type=int, default=100)
    check = sub.add_parser("check", help="load a checkpoint strictly and print what it holds")
    check.add_argument("arch", help=f"one of {', '.join(names())}")
    check.add_argument("checkpoint", help="a {'model': state_dict} .pth file or a bare state dict")
    check.add_argument("--num-classes", type=int, default=100)
    return parser.parse_args(argv)


def feature_summary(arch: str, num_classes: int) -> str:
    """`name CxHxW` for each feature of `arch` at 32x32 input."""
    model = create(arch, num_classes).eval()
    with torch.no_grad():
        _, feats = model(torch.zeros(1, 3, 32, 32), with_features=True)
    return ", ".join(f"{n} {'x'.join(map(str, f.shape[1:]))}" for n, f in zip(model.feature_names, feats))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.command == "list":
        for arch in names():
            params = num_parameters(create(arch, args.num_classes))
            print(f"{arch:12s} {params:>12,d}  {feature_summary(arch, args.num_classes)}")
        return 0
    model = create(args.arch, args.num_classes)
    load_weights(model, args.checkpoint, args.arch)
    print(f"{args.checkpoint}: loads into {args.arch} ({num_parameters(model):,d} parameters, strict)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
