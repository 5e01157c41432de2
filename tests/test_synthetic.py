"""The generated dataset with a known Bayes posterior: deterministic, exact, cached, checked."""
from __future__ import annotations

import json

import pytest
import torch

from distill.config import DataConfig
from distill.data import load_raw, load_splits, synthetic
from distill.metrics import probability_scores
from tests.conftest import assert_one_line_error, run_in_process, run_module

SMALL = "synthetic-bcpd:classes=4,dim=3,separation=2.5,train=400,test=200,seed=7"


def test_the_generator_is_deterministic_for_a_seed_and_differs_across_seeds():
    params = synthetic.BCPDParams(classes=4, dim=3, train=40, test=20, seed=1)
    first, again = synthetic.generate(params), synthetic.generate(params)
    assert all(torch.equal(first[k], again[k]) for k in first)
    other = synthetic.generate(synthetic.BCPDParams(classes=4, dim=3, train=40, test=20, seed=2))
    assert not torch.equal(first["train_images"], other["train_images"])


def test_the_true_posterior_has_zero_kl_and_the_uniform_predictor_does_not(tmp_path):
    raw = load_raw(SMALL, tmp_path)
    truth, labels = raw.test.posteriors, raw.test.labels
    exact = probability_scores(truth.log(), labels, truth)
    assert exact["kl_bayes"] == pytest.approx(0.0, abs=1e-5)
    assert 0.5 < exact["bayes_acc"] < 1.0  # learnable, and not trivially separable
    uniform = probability_scores(torch.zeros_like(truth), labels, truth)
    assert uniform["kl_bayes"] > 0.3


@pytest.mark.parametrize("params, bound", [
    (synthetic.BCPDParams(classes=5, dim=4, train=50, test=300, seed=3), 3e-5),  # measured 1.4e-5
    (synthetic.BCPDParams(train=50), 5e-6),  # the defaults' latent size and classes: measured 2.6e-6
])
def test_an_image_determines_its_posterior_up_to_the_uint8_rounding(params, bound):
    """The uint8 rounding costs a mean KL of a few 1e-6 nats at the defaults (README), recovered here from the image."""
    tensors = synthetic.generate(params)
    latents = synthetic.recover_latents(tensors["test_images"], tensors["patterns"])
    recovered = synthetic.posteriors_of(latents, tensors["means"])
    truth = tensors["test_posteriors"].double()
    kl = (truth * (truth.clamp_min(1e-30).log() - recovered.clamp_min(1e-30).log())).sum(dim=1)
    assert kl.mean().item() < bound
    assert torch.linalg.matrix_rank(tensors["patterns"]).item() == params.dim  # the decoder is injective


def test_the_set_is_cached_by_its_parameters_and_validation_keeps_posteriors(tmp_path):
    splits = load_splits(DataConfig(dataset=SMALL, data_dir=str(tmp_path), val_size=40))
    assert splits.val.posteriors is not None and splits.val.posteriors.shape == (40, 4)
    rows = splits.val.posteriors.sum(dim=1)
    assert torch.allclose(rows, torch.ones_like(rows))
    load_raw(SMALL.replace("seed=7", "seed=8"), tmp_path)
    manifests = sorted((tmp_path / "synthetic-bcpd").glob("*.json"))
    assert len(manifests) == 2 and len(list((tmp_path / "synthetic-bcpd").glob("*.pt"))) == 2
    assert json.loads(manifests[0].read_text())["params"]["classes"] == 4


def test_info_prints_the_bayes_accuracy(tmp_path):
    shown = run_module("distill.data", "info", "--dataset", SMALL, "--data-dir", str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert "Bayes accuracy" in shown.stdout and "mean posterior entropy" in shown.stdout


@pytest.mark.parametrize(("dataset", "message"), [
    ("synthetic-bcpd:classes=0", "classes=0"),
    ("synthetic-bcpd:separation=-1", "separation=-1"),
    ("synthetic-bcpd:classes=10,train=5", "train=5"),
    ("synthetic-bcpd:colours=3", "unknown parameter colours"),
    ("synthetic-bcpd:classes=ten", "must be numbers"),
    ("synthetic-bcpd:classes", "key=value"),
    ("digits:classes=3", "takes no parameters"),
])
def test_generator_parameters_that_make_no_sense_end_in_one_line(tmp_path, dataset, message, capsys):
    from distill.data.__main__ import main

    assert_one_line_error(run_in_process(main, "info", "--dataset", dataset, "--data-dir", tmp_path, capsys=capsys),
                          message)


@pytest.mark.slow
def test_a_trained_teacher_estimates_the_posterior_far_better_than_a_uniform_guess(tmp_path):
    dataset = "synthetic-bcpd:classes=4,dim=3,separation=2.5,train=600,test=200,seed=7"
    done = run_module("distill.train", "teacher", "--dataset", dataset, "--data-dir", str(tmp_path), "--arch",
                      "resnet8", "--epochs", "6", "--batch-size", "32", "--test", "--out", str(tmp_path / "t"))
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    truth = load_raw(dataset, tmp_path).test.posteriors
    uniform = probability_scores(torch.zeros_like(truth), torch.zeros(len(truth), dtype=torch.int64), truth)
    assert metrics["test"]["test_kl_bayes"] < uniform["kl_bayes"] / 4
    assert metrics["final"]["val_kl_bayes"] > 0 and metrics["test"]["test_bayes_acc"] == pytest.approx(
        uniform["bayes_acc"])


def test_the_benchmark_refuses_a_dataset_without_a_true_posterior(capsys):
    from bench import bcpd_mcmi

    assert_one_line_error(run_in_process(bcpd_mcmi.main, "--dataset", "digits", capsys=capsys),
                          "carries no true posterior")
