"""Values a method's reference code publishes for one teacher–student pair (DKD's β in mdistiller) are that
pair's default in `distill.train` and a search, and `search.distiller`'s first point and baseline."""
from __future__ import annotations

from distill import train
from distill.losses.published import PER_PAIR, SOURCES, published_config
from search import distiller
from search.spec import build_spec
from spaces.method import method_spaces


def test_dkd_publishes_beta_per_pair_and_its_general_default_elsewhere():
    assert published_config("dkd", "resnet56", "resnet20").beta == 2.0
    assert published_config("dkd", "vgg13", "vgg8").beta == 6.0
    assert published_config("dkd", "resnet32x4", "resnet8x4").beta == 8.0 == published_config("dkd").beta
    assert published_config("kd", "resnet56", "resnet20") == published_config("kd")
    assert {name for name, _, _ in PER_PAIR} <= set(SOURCES)  # every fact names its source


def test_the_pair_sets_the_default_and_an_explicit_setting_wins():
    base = ["student", "--dataset", "digits", "--teacher-checkpoint", "t.pth", "--distiller", "dkd", "--out", "o"]
    job = train.build_job(train.parse([*base, "--arch", "resnet20", "--teacher", "resnet56"]))
    assert job.distillers["dkd"].beta == 2.0
    assert train.build_job(train.parse([*base, "--arch", "resnet8x4", "--teacher", "resnet32x4"])).distillers[
        "dkd"].beta == 8.0
    given = train.build_job(train.parse([*base, "--arch", "resnet20", "--teacher", "resnet56", "--dkd-beta", "4"]))
    assert given.distillers["dkd"].beta == 4.0


def test_the_method_search_starts_from_and_confirms_against_the_pairs_published_point(tmp_path):
    definition = distiller.definition_for(method_spaces()["dkd"])
    argv = ["--method", "dkd", "--preset", "digits", "--teacher", "resnet56", "--student", "resnet20",
            "--storage-path", str(tmp_path / "results"), "--name", "s"]
    spec = build_spec(definition, argv)
    (baseline,) = spec.baselines
    assert baseline.config["dkd.beta"] == 2.0 and spec.points == [baseline.config]
    assert "β=2" in baseline.label and "resnet56 → resnet20" in baseline.description
    assert spec.jobs.student.distillers["dkd"].beta == 2.0
