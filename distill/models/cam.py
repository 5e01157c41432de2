"""Eigen-CAM (Muhammad & Yeasin, 2020): where a net looks, with no gradients and no class.

The map of an image is its feature map [C, h, w] projected onto the first principal direction of its
h*w channel vectors, upsampled onto the image and scaled to [0, 1]. The sign of a principal direction
is arbitrary; it is chosen so the map agrees with the mean activation (what the net responds to).
Written here rather than taken from pytorch-grad-cam: that package pulls in OpenCV for what is one
SVD per image, and it addresses layers by module, where the zoo addresses features by name.
"""
from __future__ import annotations

import textwrap

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from distill.errors import UserError
from distill.models.base import FeatureNet


def principal_map(features: torch.Tensor) -> torch.Tensor:
    """[N, C, h, w] -> [N, h, w]: each map's projection on its first principal direction, signed to agree
    with the mean activation."""
    n, c, h, w = features.shape
    vectors = features.float().reshape(n, c, h * w).transpose(1, 2)  # [N, h*w, C]
    _, _, vh = torch.linalg.svd(vectors, full_matrices=False)
    projection = vectors @ vh[:, 0, :, None]  # [N, h*w, 1]
    mean_activation = vectors.mean(dim=2, keepdim=True)
    sign = torch.sign((projection * (mean_activation - mean_activation.mean(dim=1, keepdim=True))).sum(dim=1))
    return (projection * torch.where(sign == 0, 1.0, sign)[:, None]).reshape(n, h, w)


@torch.no_grad()
def eigen_cam(model: FeatureNet, images: torch.Tensor, feature: int | str | None = None) -> torch.Tensor:
    """[N, H, W] maps in [0, 1] for normalised `images` [N, 3, H, W], from feature `feature` (name or index;
    default: the last convolutional stage)."""
    model.eval()
    _, feats = model(images, with_features=True)
    index = max(i for i, feat in enumerate(feats) if feat.dim() == 4) if feature is None else model.feature_index(feature)
    chosen = feats[index]
    if chosen.dim() != 4:
        raise UserError(f"feature {model.feature_names[index]!r} has no spatial map "
                        f"(shape {tuple(chosen.shape[1:])}); choose a convolutional stage")
    maps = principal_map(chosen).clamp_min(0)[:, None]
    maps = F.interpolate(maps, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = maps.flatten(1).max(dim=1).values.clamp_min(1e-12)
    return maps / peak[:, None, None]


def pick_images(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """`count` indices spread over the classes (round-robin over a seeded shuffle of each class)."""
    generator = torch.Generator().manual_seed(seed)
    per_class = [idx[torch.randperm(len(idx), generator=generator)] for idx in
                 (torch.nonzero(labels == c).squeeze(1) for c in torch.unique(labels))]
    chosen, depth = [], 0
    while len(chosen) < count and any(depth < len(idx) for idx in per_class):
        chosen += [idx[depth].item() for idx in per_class if depth < len(idx)]
        depth += 1
    return torch.tensor(chosen[:count], dtype=torch.int64)


def cam_grid(images: torch.Tensor, maps: dict[str, torch.Tensor], path: Path,
             titles: Sequence[str] | None = None) -> Path:
    """A PNG: row 1 the uint8 `images` [N, 3, H, W]; then one row per net (label -> maps [N, H, W])
    with its Eigen-CAM over the image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(images)
    fig, axes = plt.subplots(1 + len(maps), count, figsize=(1.1 * count, 1.25 * (1 + len(maps))), squeeze=False)
    pictures = images.permute(0, 2, 3, 1).numpy()
    for j in range(count):
        axes[0][j].imshow(pictures[j])
        if titles:
            axes[0][j].set_title(titles[j], fontsize=7)
        for i, cams in enumerate(maps.values(), start=1):
            axes[i][j].imshow(pictures[j])
            axes[i][j].imshow(cams[j].numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
    for i, label in enumerate(["image", *maps], start=0):  # horizontal and wrapped: a row's label stays in its row
        axes[i][0].set_ylabel("\n".join(textwrap.wrap(label, 16)), fontsize=8, rotation=0, ha="right", va="center")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
