"""torchvision's ImageNet ResNets in the zoo: torchvision's own nets and state dicts, the zoo's feature contract,
strict loading of torchvision checkpoints, ImageNet's recipe, and distillers that work on them unchanged."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torchvision

from distill import models
from distill.config import OptimConfig, StudentJob, imagenet_recipe, mll_recipe
from distill.data import load_raw, make_splits
from distill.errors import UserError
from distill.losses import KDConfig
from distill.losses.at import ATConfig
from distill.losses.crd import CRDConfig
from distill.losses.fitnet import FitNetConfig
from distill.runs import build_student_run
from tests.conftest import REPO

# torchvision's own builders, and their published parameter counts at 1,000 classes.
TORCHVISION = {"tv_resnet18": (torchvision.models.resnet18, 11_689_512),
               "tv_resnet34": (torchvision.models.resnet34, 21_797_672),
               "tv_resnet50": (torchvision.models.resnet50, 25_557_032)}


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_the_net_is_torchvisions_with_its_state_dict(name):
    build, parameters = TORCHVISION[name]
    with torch.device("meta"):
        ours, theirs = models.create(name, 1000), build()
        assert models.num_parameters(ours) == parameters
        assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


def test_its_outputs_are_torchvisions_and_its_features_follow_the_zoo_contract():
    ours = models.create("tv_resnet18", 10).eval()
    theirs = torchvision.models.resnet18(num_classes=10).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)  # the same names and shapes, buffers included
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, feats = ours(x, with_features=True)
        torch.testing.assert_close(logits, theirs(x))
        torch.testing.assert_close(ours(x), logits)
    assert ours.feature_names == ("stem", "stage1", "stage2", "stage3", "stage4", "pool")
    widths = [f.shape[1] for f in feats]
    assert feats[0].shape[-1] == 16 and feats[-1].shape == (2, widths[-2])  # 64 px: /2 conv, /2 max-pool
    assert [f.shape[-1] for f in feats[1:-1]] == [16, 8, 4, 2]
    assert ours.captured is None  # the hooks keep nothing between calls


def test_a_torchvision_checkpoint_loads_strictly_and_ours_loads_into_torchvision(tmp_path):
    theirs = torchvision.models.resnet34(num_classes=10)
    torch.save(theirs.state_dict(), tmp_path / "resnet34.pth")  # as torchvision code saves one
    ours = models.load_weights(models.create("tv_resnet34", 10), tmp_path / "resnet34.pth", "tv_resnet34")
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value)
    models.save_weights(ours, tmp_path / "ours.pth", arch="tv_resnet34")
    torchvision.models.resnet34(num_classes=10).load_state_dict(models.read_state_dict(tmp_path / "ours.pth"))
    with pytest.raises(UserError, match="does not fit tv_resnet18.*it looks like a tv_resnet34 checkpoint"):
        models.load_weights(models.create("tv_resnet18", 10), tmp_path / "resnet34.pth", "tv_resnet18")


def test_imagenet_nets_take_the_imagenet_recipe():
    recipe = mll_recipe("tv_resnet18")
    assert recipe == imagenet_recipe() == OptimConfig(epochs=100, lr=0.1, batch_size=256, momentum=0.9,
                                                      weight_decay=1e-4, schedule="step", milestones=(30, 60, 90))
    assert imagenet_recipe(512).lr == pytest.approx(0.2)  # 0.1 x batch / 256
    assert mll_recipe("resnet8").lr == 0.05 and mll_recipe("resnet8").epochs == 240


def test_listing_the_zoo_does_not_import_torchvision():
    code = "import sys, distill.models as m; assert 'tv_resnet50' in m.names(); print('torchvision' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert shown.stdout.strip() == "False"


def test_the_zoo_listing_shows_each_nets_features_at_the_input_it_was_built_for(capsys):
    from distill.models.__main__ import main

    assert main(["list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "at 224x224: stem 64x56x56, stage1 64x56x56" in lines["tv_resnet18"] and "pool 512" in lines["tv_resnet18"]
    assert "at 32x32: stem 16x32x32" in lines["resnet8"]


def test_feature_distillers_work_on_a_torchvision_student_unchanged():
    """KD, FitNet (stage 2), AT (every stage) and CRD (pooled vectors) between torchvision ResNets, at the digits'
    32 x 32: one epoch trains, each term is named after its distiller."""
    few = make_splits(load_raw("digits"), val_size=180, seed=0, few_shot_fraction=0.1)
    teacher = models.create("tv_resnet18", few.num_classes)
    job = StudentJob(arch="tv_resnet18", teacher_arch="tv_resnet18", optim=OptimConfig(epochs=1, batch_size=32),
                     distillers={"kd": KDConfig(), "fitnet": FitNetConfig(), "at": ATConfig(), "crd": CRDConfig(nce_k=64)})
    result = next(build_student_run(job, few, teacher=teacher).trainer.epochs())
    assert result.train_terms.keys() == {"ce", "kd", "fitnet", "at", "crd"}
    assert all(torch.isfinite(torch.tensor(v)) for v in result.train_terms.values())


def test_pretrained_weights_come_from_torchs_hub_cache_and_only_fit_imagenet(tmp_path, monkeypatch):
    """--pretrained-teacher reads torchvision's weights file where torchvision puts it (planted here: nothing is
    downloaded in tests), loads it strictly, and refuses nets and datasets the weights cannot serve."""
    from torchvision.models import ResNet18_Weights

    from distill.models.imagenet import pretrained

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(3)
    reference = torchvision.models.resnet18()
    cached = tmp_path / "hub" / "checkpoints" / ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)
    net = pretrained("tv_resnet18", 1000)
    for name, value in reference.state_dict().items():
        assert torch.equal(net.state_dict()[name], value), name
    with pytest.raises(UserError, match="takes one of torchvision's nets .*, not resnet8"):
        pretrained("resnet8", 1000)
    with pytest.raises(UserError, match="classifies ImageNet's 1000 classes; this dataset has 10"):
        pretrained("tv_resnet18", 10)
