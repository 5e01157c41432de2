"""The model zoo: exact parameter counts, the feature contract, checkpoint layout and loading."""
from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest
import torch

from distill import models
from distill.errors import UserError
from distill.models import create, load_weights, num_parameters, save_weights
from distill.models.registry import IMAGENET_NET_PREFIX
from tests.conftest import assert_one_line_error, run_in_process, run_module

PARAMS_100 = {
    "resnet8": 83_892, "resnet14": 181_108, "resnet20": 278_324, "resnet32": 472_756,
    "resnet44": 667_188, "resnet56": 861_620, "resnet110": 1_736_564, "resnet8x4": 1_233_540,
    "resnet32x4": 7_433_860, "ResNet50": 23_705_252, "wrn_16_1": 180_916, "wrn_16_2": 703_284,
    "wrn_40_1": 569_780, "wrn_40_2": 2_255_156, "vgg8": 3_965_028, "vgg11": 9_277_284,
    "vgg13": 9_462_180, "vgg16": 14_774_436, "vgg19": 20_086_692, "MobileNetV2": 812_836,
    "ShuffleV1": 949_258, "ShuffleV2": 1_355_528,
}
# Feature lists from the issue (the published zoo's is_feat=True output), C x H x W at 32x32 input.
FEATURES = {
    "resnet8x4": [(32, 32, 32), (64, 32, 32), (128, 16, 16), (256, 8, 8), (256,)],
    "ResNet50": [(64, 32, 32), (256, 32, 32), (512, 16, 16), (1024, 8, 8), (2048, 4, 4), (2048,)],
    "MobileNetV2": [(16, 16, 16), (12, 16, 16), (16, 8, 8), (48, 4, 4), (160, 2, 2), (1280,)],
    "resnet32": [(16, 32, 32), (16, 32, 32), (32, 16, 16), (64, 8, 8), (64,)],
    "wrn_40_2": [(16, 32, 32), (32, 32, 32), (64, 16, 16), (128, 8, 8), (128,)],
    "vgg13": [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 4, 4), (512,)],
    "ShuffleV1": [(24, 32, 32), (240, 16, 16), (480, 8, 8), (960, 4, 4), (960,)],
    "ShuffleV2": [(24, 32, 32), (116, 16, 16), (232, 8, 8), (464, 4, 4), (1024,)],
}
LAYOUTS = json.loads((Path(__file__).parent / "data" / "published_state_dict_layouts.json").read_text())


def test_zoo_has_the_22_benchmark_nets() -> None:
    cifar = [name for name in models.names() if not name.startswith(IMAGENET_NET_PREFIX)]
    assert sorted(cifar) == sorted(PARAMS_100)


@pytest.mark.parametrize("name", list(PARAMS_100))
def test_parameter_count_for_100_classes(name: str) -> None:
    with torch.device("meta"):
        assert num_parameters(create(name, 100)) == PARAMS_100[name]


@pytest.mark.parametrize("name", list(PARAMS_100))
def test_state_dict_layout_matches_published_checkpoints(name: str) -> None:
    """Names and shapes of every parameter and buffer equal those of RepDistiller's CIFAR-100 files."""
    with torch.device("meta"):
        state = create(name, 100).state_dict()
    lines = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in state.items())
    assert len(state) == LAYOUTS[name]["entries"]
    assert hashlib.sha256(lines.encode()).hexdigest() == LAYOUTS[name]["sha256"]


@pytest.mark.parametrize("name", list(PARAMS_100))
def test_feature_contract(name: str) -> None:
    model = create(name, 10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits, feats = model(x, with_features=True)
        plain = model(x)
    assert logits.shape == (2, 10)
    torch.testing.assert_close(plain, logits)
    assert len(feats) == len(model.feature_names)
    assert model.feature_names[0] == "stem" and model.feature_names[-1] == "pool"
    assert all(f.dim() == 4 for f in feats[:-1]) and feats[-1].dim() == 2
    sides = [f.shape[-1] for f in feats[1:-1]]
    assert sides == sorted(sides, reverse=True), "stages must not grow spatially"
    if name in FEATURES:
        assert [tuple(f.shape[1:]) for f in feats] == FEATURES[name]


def test_pooled_feature_feeds_the_classifier() -> None:
    model = create("resnet8x4", 100).eval()
    with torch.no_grad():
        logits, feats = model(torch.randn(3, 3, 32, 32), with_features=True)
        torch.testing.assert_close(model.classify(feats[-1]), logits)


def test_features_are_addressed_by_index_or_name() -> None:
    model = create("resnet8x4", 100)
    assert model.feature_index("stage2") == 2
    assert model.feature_index(-1) == 4 == model.feature_index("pool")
    assert model.feature_index("3") == 3
    with pytest.raises(UserError, match="no feature 'stage9'"):
        model.feature_index("stage9")
    with pytest.raises(UserError, match="out of range"):
        model.feature_index(5)


def test_unknown_model_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown model 'resnet9000'; choose one of: resnet8"):
        create("resnet9000")


def _perturb_batchnorm(model: torch.nn.Module) -> None:
    """Non-default BN statistics so that eval-mode outputs depend on every buffer."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)


@pytest.mark.parametrize("name", ["resnet32x4", "wrn_40_2", "vgg13", "ResNet50"])
def test_wrapped_checkpoint_round_trip(tmp_path: Path, name: str) -> None:
    """A RepDistiller-style {'model': ..., 'epoch': ..., 'best_acc': ...} file loads strictly, same outputs."""
    torch.manual_seed(0)
    source = create(name, 100)
    _perturb_batchnorm(source)
    path = save_weights(source, tmp_path / f"{name}.pth", epoch=240, best_acc=torch.tensor(79.42))
    target = load_weights(create(name, 100), path, name)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target.eval()(x), source.eval()(x), rtol=0, atol=0)
    assert not (tmp_path / f"{name}.pth.tmp").exists()


def test_bare_and_dataparallel_state_dicts_load(tmp_path: Path) -> None:
    source = create("resnet8", 10)
    torch.save(source.state_dict(), tmp_path / "bare.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "dp.pth")
    for file in ("bare.pth", "dp.pth"):
        loaded = load_weights(create("resnet8", 10), tmp_path / file)
        torch.testing.assert_close(loaded.fc.weight, source.fc.weight)


def test_wrong_architecture_names_the_likely_one(tmp_path: Path) -> None:
    save_weights(create("resnet32x4", 100), tmp_path / "teacher.pth")
    with pytest.raises(UserError) as caught:
        load_weights(create("resnet8x4", 100), tmp_path / "teacher.pth", "resnet8x4")
    message = str(caught.value)
    assert "\n" not in message
    assert "does not fit resnet8x4" in message and "unexpected keys" in message
    assert "looks like a resnet32x4 checkpoint" in message


def test_wrong_class_count_is_reported_as_a_shape_mismatch(tmp_path: Path) -> None:
    save_weights(create("resnet8", 100), tmp_path / "t.pth")
    with pytest.raises(UserError, match=r"fc.weight: checkpoint \(100, 64\), model \(10, 64\)"):
        load_weights(create("resnet8", 10), tmp_path / "t.pth", "resnet8")


@pytest.mark.parametrize("name, payload, fragment", [
    ("junk.pth", b"not a checkpoint", "is not a PyTorch checkpoint"),
    ("table.csv", b"a,b,c\n1,2,3\n", "is not a PyTorch checkpoint"),  # once a KeyError/IndexError traceback
    ("notes.txt", b"hello\n", "is not a PyTorch checkpoint"),
    ("legacy.pkl", pickle.dumps({"a": object}, protocol=2), "holds objects other than tensors"),
])
def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path: Path, name: str, payload: bytes, fragment: str) -> None:
    (tmp_path / name).write_bytes(payload)
    with pytest.raises(UserError, match=fragment) as raised:
        load_weights(create("resnet8", 10), tmp_path / name)
    assert "\n" not in str(raised.value) and "weights_only=False" not in str(raised.value)


def test_unreadable_checkpoint_is_a_user_error(tmp_path: Path) -> None:
    torch.save({"model": create("resnet8", 10).state_dict()}, tmp_path / "whole.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "whole.pth").read_bytes()[:300])
    with pytest.raises(UserError, match="cut.pth: it is truncated or corrupt"):
        load_weights(create("resnet8", 10), tmp_path / "cut.pth")
    torch.save({"epoch": 3}, tmp_path / "nostate.pth")
    with pytest.raises(UserError, match="holds no state dict"):
        load_weights(create("resnet8", 10), tmp_path / "nostate.pth")


def test_cli_lists_the_zoo() -> None:
    result = run_module("distill.models", "list")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:2] == ["architecture", "parameters"] and "100-class classifier" in header
    parameters = {line.split()[0]: line.split()[1] for line in rows}
    assert len(parameters) == 25 and parameters["resnet32x4"] == "7,433,860"  # 22 CIFAR nets, 3 torchvision ResNets
    assert parameters["tv_resnet34"] == "21,335,972"  # at the listing's 100 classes


def test_cli_checks_a_checkpoint(tmp_path: Path, capsys) -> None:
    from distill.models.__main__ import main

    save_weights(create("wrn_40_2", 100), tmp_path / "wrn.pth")
    ok = run_in_process(main, "check", "wrn_40_2", tmp_path / "wrn.pth", capsys=capsys)
    assert ok.returncode == 0 and "loads into wrn_40_2" in ok.stdout
    wrong = run_in_process(main, "check", "vgg13", tmp_path / "wrn.pth", capsys=capsys)
    assert_one_line_error(wrong, "does not fit vgg13", "looks like a wrn_40_2 checkpoint")
    unknown = run_in_process(main, "check", "resnet9000", tmp_path / "wrn.pth", capsys=capsys)
    assert_one_line_error(unknown, "unknown model 'resnet9000'")


def test_cli_checks_a_checkpoint_at_the_class_count_it_records_or_its_classifier_shows(tmp_path: Path, capsys):
    """A digits teacher (10 classes) checks without --num-classes, recorded by our runs or not."""
    from distill.models.__main__ import main

    save_weights(create("resnet8", 10), tmp_path / "ours.pth", arch="resnet8", num_classes=10)
    torch.save({"model": create("resnet8", 10).state_dict()}, tmp_path / "theirs.pth")
    for name in ("ours.pth", "theirs.pth"):
        done = run_in_process(main, "check", "resnet8", tmp_path / name, capsys=capsys)
        assert done.returncode == 0 and "loads into resnet8 with 10 classes" in done.stdout
    forced = run_in_process(main, "check", "resnet8", tmp_path / "ours.pth", "--num-classes", "100", capsys=capsys)
    assert_one_line_error(forced, "fc.weight: checkpoint (10, 64), model (100, 64)")
