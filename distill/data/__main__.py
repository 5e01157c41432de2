"""`python -m distill.data`: download a dataset, or check that its files are in place and intact."""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from distill.cli import ArgumentParser, run_cli
from distill.config import DataConfig
from distill.data import dataset_names, load_raw, load_splits
from distill.metrics import accuracy, bayes_classifier_scores


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = DataConfig()
    parser = ArgumentParser(prog="python -m distill.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("download", "fetch the official files (through torchvision) and check them"),
                            ("info", "read the files, check md5s, and print the splits a run would use")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--dataset", default=defaults.dataset,
                         help=f"one of {', '.join(dataset_names())}; synthetic-bcpd takes parameters: "
                         "synthetic-bcpd:classes=10,dim=8,separation=3,train=5000,test=1000,seed=0")
        cmd.add_argument("--data-dir", default=defaults.data_dir, help="folder holding e.g. cifar-100-python/")
        cmd.add_argument("--no-verify", action="store_true", help="skip the md5 check against the official sums")
    info = sub.choices["info"]
    info.add_argument("--val-size", type=int, default=None, help="held-out validation images (default: dataset's)")
    info.add_argument("--seed", type=int, default=defaults.split_seed, help="split seed")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.command == "download":
        raw = load_raw(args.dataset, args.data_dir, download=True, verify_md5=not args.no_verify)
        print(f"{raw.name}: {len(raw.train)} train and {len(raw.test)} test images ready in {args.data_dir}")
        return 0
    splits = load_splits(DataConfig(dataset=args.dataset, data_dir=args.data_dir, verify_md5=not args.no_verify,
                                    val_size=args.val_size, split_seed=args.seed))
    print(f"{splits.name}: {splits.num_classes} classes, image {splits.train.image_shape}")
    for label, part in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        print(f"  {label:5s} {len(part):6d} images")
    if splits.test.posteriors is not None:
        truth, labels = splits.test.posteriors, splits.test.labels
        scores = bayes_classifier_scores(truth, labels)
        print(f"  true posterior known: Bayes accuracy {scores['bayes_acc']:.4f} (expected, test), "
              f"the Bayes classifier scores {accuracy(truth, labels):.4f} on these test labels; "
              f"mean posterior entropy {scores['entropy']:.4f} nats")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
