"""`synthetic-bcpd`: generated 3x32x32 images whose Bayes posterior P*(y|x) is known exactly.

The generative story, fixed by a seed:
- a class y, uniform over K classes;
- a latent z ~ N(mu_y, I) in d dimensions; the class means mu_y are random directions scaled to
  length `separation` (the larger, the higher the Bayes accuracy);
- the image x = round(255 * sigmoid(B z / sqrt(d))), where B maps the latent onto d smooth random
  colour patterns (a few low spatial frequencies each). B has full column rank and the sigmoid is
  strictly increasing, so the map z -> x is smooth and injective up to the uint8 rounding.

Because x determines z, P*(y|x) = P(y|z) = softmax_y(mu_y . z - |mu_y|^2 / 2), which every image
carries as its `posteriors` row. The rounding moves a pixel by at most 1/510, which moves the latent
recovered from x by about 1e-3 (`recover_latents`; measured in the tests), so P*(y|z) is P*(y|x) up
to a KL of about 1e-6 nats. Parameters go in the dataset name, e.g.
`synthetic-bcpd:classes=10,dim=8,separation=3,train=5000,test=1000,seed=0`; the generated set is
cached under `DATA_DIR/synthetic-bcpd/` in a file named by every parameter, with a JSON manifest.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from distill.data import fingerprints
from distill.data.base import DATASETS, ImageSet, RawDataset
from distill.errors import UserError
from distill.metrics import bayes_classifier_scores
from distill.models.checkpoints import atomic_save, load_torch_file

NAME = "synthetic-bcpd"
SIDE, CHANNELS, FREQUENCIES = 32, 3, 4  # patterns mix spatial frequencies 0..3 per axis
FORMAT = 1  # bump when the generator changes, so an old cache is never read as the new one


@dataclass(frozen=True)
class BCPDParams:
    """What defines a generated set; every field is part of its cache file's name."""

    classes: int = 10
    dim: int = 8
    separation: float = 3.0
    train: int = 5000
    test: int = 1000
    seed: int = 0

    def check(self) -> BCPDParams:
        problems = []
        if self.classes < 2:
            problems.append(f"classes={self.classes} (need at least 2)")
        if self.dim < 1:
            problems.append(f"dim={self.dim} (need at least 1)")
        if not (math.isfinite(self.separation) and self.separation >= 0):
            problems.append(f"separation={self.separation} (need a finite number >= 0)")
        for part in ("train", "test"):
            if getattr(self, part) < self.classes:
                problems.append(f"{part}={getattr(self, part)} (need at least one image per class)")
        if problems:
            raise UserError(f"{NAME}: " + "; ".join(problems))
        return self

    @property
    def key(self) -> str:
        return (f"k{self.classes}-d{self.dim}-sep{self.separation:g}-n{self.train}-t{self.test}-seed{self.seed}"
                f"-v{FORMAT}")


def parse_params(options: dict[str, str]) -> BCPDParams:
    """`{'classes': '10', ...}` from the dataset name, checked; unknown keys and non-numbers are refused."""
    types = {f.name: (float if f.name == "separation" else int) for f in fields(BCPDParams)}
    unknown = sorted(set(options) - set(types))
    if unknown:
        raise UserError(f"{NAME}: unknown parameter {', '.join(unknown)}; known: {', '.join(types)}")
    try:
        values = {name: types[name](value) for name, value in options.items()}
    except ValueError:
        raise UserError(f"{NAME}: parameters must be numbers, got {options}") from None
    return BCPDParams(**values).check()


def class_means(params: BCPDParams, generator: torch.Generator) -> torch.Tensor:
    directions = torch.randn(params.classes, params.dim, generator=generator, dtype=torch.float64)
    return params.separation * directions / directions.norm(dim=1, keepdim=True)


def smooth_patterns(dim: int, generator: torch.Generator) -> torch.Tensor:
    """[dim, 3*32*32]: per latent dimension, a random mix of low-frequency cosines per colour channel,
    scaled to unit RMS."""
    grid = torch.arange(SIDE, dtype=torch.float64) * (2 * math.pi / SIDE)
    u, v = torch.meshgrid(torch.arange(FREQUENCIES), torch.arange(FREQUENCIES), indexing="ij")
    amplitude = torch.randn(dim, CHANNELS, FREQUENCIES, FREQUENCIES, generator=generator, dtype=torch.float64)
    phase = torch.rand(dim, CHANNELS, FREQUENCIES, FREQUENCIES, generator=generator, dtype=torch.float64) * 2 * math.pi
    amplitude = amplitude / (1.0 + u + v)  # lower frequencies dominate: smooth patterns
    waves = torch.cos(u[..., None, None] * grid[:, None] + v[..., None, None] * grid[None, :]
                      + phase[..., None, None])  # [dim, C, F, F, H, W]
    patterns = (amplitude[..., None, None] * waves).sum(dim=(2, 3)).reshape(dim, -1)
    return patterns / patterns.pow(2).mean(dim=1, keepdim=True).sqrt()


def posteriors_of(latents: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """P(y|z) for equal priors and unit covariance: softmax_y(mu_y . z - |mu_y|^2 / 2)."""
    return torch.softmax(latents @ means.T - means.pow(2).sum(dim=1) / 2, dim=1)


def render(latents: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    pre = latents @ patterns / math.sqrt(latents.shape[1])
    return (torch.sigmoid(pre) * 255).round().to(torch.uint8).reshape(-1, CHANNELS, SIDE, SIDE)


def recover_latents(images: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    """The latents that rendered `images`, by least squares through the inverse sigmoid."""
    pixels = (images.reshape(len(images), -1).double() / 255).clamp(1 / 510, 1 - 1 / 510)
    pre = torch.log(pixels) - torch.log1p(-pixels)
    return torch.linalg.lstsq(patterns.T, pre.T).solution.T * math.sqrt(patterns.shape[0])


def generate(params: BCPDParams) -> dict[str, torch.Tensor]:
    """Every tensor of the set, deterministic for its parameters."""
    generator = torch.Generator().manual_seed(params.seed)
    means, patterns = class_means(params, generator), smooth_patterns(params.dim, generator)
    out = {"means": means, "patterns": patterns}
    for part, size in (("train", params.train), ("test", params.test)):
        labels = torch.arange(size) % params.classes  # balanced, then shuffled
        labels = labels[torch.randperm(size, generator=generator)]
        latents = means[labels] + torch.randn(size, params.dim, generator=generator, dtype=torch.float64)
        out.update({f"{part}_images": render(latents, patterns), f"{part}_labels": labels.to(torch.int64),
                    f"{part}_posteriors": posteriors_of(latents, means).float()})
    return out


def cached(params: BCPDParams, data_dir: Path) -> dict[str, torch.Tensor]:
    """The set from `data_dir/synthetic-bcpd/<key>.pt`, generated and written there first if missing."""
    folder = data_dir / NAME
    path = folder / f"{params.key}.pt"
    if path.is_file():
        return cached_tensors(path)
    tensors = generate(params)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save(tensors, path)
    scores = bayes_classifier_scores(tensors["test_posteriors"], tensors["test_labels"])
    manifest = {"format": FORMAT, "params": asdict(params), "bayes_acc_test": scores["bayes_acc"],
                "posterior_entropy_test": scores["entropy"]}
    (folder / f"{params.key}.json").write_text(json.dumps(manifest, indent=2))
    return tensors


def cached_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A generated set written before, read weights-only; a damaged or foreign file is one UserError naming it."""
    tensors = load_torch_file(path, "generated synthetic-bcpd file")
    if not isinstance(tensors, dict) or not all(isinstance(tensors.get(f"{part}_{kind}"), torch.Tensor)
                                                for part in ("train", "test")
                                                for kind in ("images", "labels", "posteriors")):
        raise UserError(f"{path} is not a generated synthetic-bcpd file; delete it and it is generated again")
    return tensors


@DATASETS.register(NAME)
def synthetic_bcpd(data_dir: Path, download: bool, verify_md5: bool, **options: str) -> RawDataset:
    """The generated set for the parameters in the dataset name; `download`/`verify_md5` do not apply."""
    params = parse_params(options)
    tensors = cached(params, data_dir)
    train, test = (ImageSet(tensors[f"{p}_images"], tensors[f"{p}_labels"], tensors[f"{p}_posteriors"])
                   for p in ("train", "test"))
    pixels = train.images.float().div(255)
    mean = tuple(pixels.mean(dim=(0, 2, 3)).tolist())
    std = tuple(pixels.std(dim=(0, 2, 3)).tolist())
    names = tuple(f"class{c}" for c in range(params.classes))
    return RawDataset(NAME, train, test, names, mean, std, max(params.classes, params.train // 10),
                      fingerprints.of_parts(NAME, FORMAT, asdict(params)))
