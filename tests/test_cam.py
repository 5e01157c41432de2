"""Eigen-CAM: exact on a known rank-1 feature map, a grid of the expected size, one-line errors."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from distill.models import create, save_weights
from distill.models.base import FeatureNet
from distill.models.cam import cam_grid, eigen_cam, pick_images, principal_map
from tests.conftest import assert_one_line_error, run_in_process, run_module

SPATIAL = torch.tensor([[0.0, 1.0, 2.0, 1.0], [1.0, 3.0, 4.0, 1.0], [0.0, 2.0, 5.0, 0.5], [0.0, 0.0, 1.0, 0.0]])
CHANNELS = torch.tensor([0.5, -1.0, 2.0, 0.25, 1.5])


class RankOne(FeatureNet):
    """A net whose only spatial feature is CHANNELS ⊗ SPATIAL, whatever the image."""

    feature_names = ("stage1", "pool")

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feature = (CHANNELS[:, None, None] * SPATIAL)[None].expand(len(x), -1, -1, -1)
        return [feature, feature.mean(dim=(2, 3))]

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return pooled[:, :2]


def test_the_principal_map_of_a_rank_one_feature_is_that_map_up_to_scale():
    maps = principal_map((CHANNELS[:, None, None] * SPATIAL)[None])
    ratio = maps[0] / SPATIAL.clamp_min(1e-9)
    assert torch.allclose(ratio[SPATIAL > 0], ratio[SPATIAL > 0][0].expand_as(ratio[SPATIAL > 0]), rtol=1e-4)
    assert ratio[SPATIAL > 0][0] > 0  # signed to agree with the mean activation


def test_eigen_cam_of_a_rank_one_net_is_its_map_upsampled_and_scaled_to_one():
    cams = eigen_cam(RankOne(), torch.zeros(2, 3, 4, 4))
    assert cams.shape == (2, 4, 4) and torch.allclose(cams[0], SPATIAL / SPATIAL.max(), atol=1e-5)
    with pytest.raises(Exception, match="no spatial map"):
        eigen_cam(RankOne(), torch.zeros(1, 3, 4, 4), "pool")


def test_a_zoo_net_gives_one_map_per_image_in_unit_range():
    cams = eigen_cam(create("resnet8", 10), torch.randn(3, 3, 32, 32))
    assert cams.shape == (3, 32, 32) and cams.min() >= 0 and cams.max() <= 1 + 1e-6


def test_images_are_spread_over_classes_and_fixed_by_seed():
    labels = torch.tensor([0] * 10 + [1] * 10 + [2] * 10)
    chosen = pick_images(labels, 6, seed=3)
    assert sorted(labels[chosen].tolist()) == [0, 0, 1, 1, 2, 2] and torch.equal(chosen, pick_images(labels, 6, 3))


def test_the_grid_is_a_png_of_one_row_per_net_plus_the_images(tmp_path):
    images = torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8)
    maps = {"a": torch.rand(4, 32, 32), "b": torch.rand(4, 32, 32)}
    path = cam_grid(images, maps, tmp_path / "grid.png")
    width, height = Image.open(path).size
    assert (width, height) == (int(1.1 * 4 * 100), int(1.25 * 3 * 100))


def test_the_command_draws_a_checkpoint_and_refuses_what_cannot_be_drawn(tmp_path, capsys):
    from distill.models.__main__ import main

    weights = save_weights(create("resnet8", 10), tmp_path / "w.pth", arch="resnet8", num_classes=10)
    out = tmp_path / "cam.png"
    done = run_module("distill.models", "cam", "resnet8", str(weights), "--dataset", "digits", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size[0] > 1000
    common = ["--dataset", "digits", "--out", str(tmp_path / "x.png")]
    assert_one_line_error(run_in_process(main, "cam", "resnet8", weights, "--feature", "stage9", *common,
                                         capsys=capsys), "no feature 'stage9'")
    assert_one_line_error(run_in_process(main, "cam", "resnet8", weights, "--feature", "pool", *common,
                                         capsys=capsys), "no spatial map")
    assert_one_line_error(run_in_process(main, "cam", "resnet14", weights, *common, capsys=capsys), "does not fit")
