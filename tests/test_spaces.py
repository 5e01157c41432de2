"""Search spaces sample what they promise (ranges, scales, conditional parameters), and configs map onto jobs."""
from __future__ import annotations

import math
import pickle
from functools import partial

import optuna
import pytest

from distill.config import MCMIJob, MIMKDConfig, StudentJob
from distill.errors import UserError
from spaces import Range
from spaces.kd_temperature import kd_space
from spaces.mcmi_lambda import PAPER_LAMBDA, lambda_space
from spaces.mcmi_lambda import known_good as lambda_points
from spaces.mimkd import LAYER_SUBSETS, mimkd_space
from spaces.mimkd import known_good as mimkd_points
from trainables.overrides import (
    decode_layers,
    encode_layers,
    mcmi_job_for,
    mimkd_for,
    student_job_for,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sample(space, n: int = 40, points: list[dict] | None = None) -> list[dict]:
    """n configs from a define-by-run space the way Ray's OptunaSearch draws them: params plus constants."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for point in points or []:
        study.enqueue_trial(point)
    configs = []
    for _ in range(n):
        trial = study.ask()
        constants = space(trial) or {}
        configs.append({**trial.params, **constants})
        study.tell(trial, 0.0)
    return configs


def test_lambda_space_is_log_uniform_in_range_and_starts_at_the_papers_point():
    configs = sample(partial(lambda_space, lam=Range(0.05, 1.0, log=True)), 200, lambda_points())
    assert configs[0] == {"lam": PAPER_LAMBDA}
    lams = [c["lam"] for c in configs[1:]]
    assert all(0.05 <= x <= 1.0 for x in lams) and set(configs[1]) == {"lam"}
    below_geometric_mid = sum(x < math.sqrt(0.05) for x in lams) / len(lams)
    assert 0.35 < below_geometric_mid < 0.65  # log-uniform: half below the geometric midpoint (~0.22)


def test_lambda_space_searches_the_learning_rate_only_when_asked():
    configs = sample(partial(lambda_space, lam=Range(0.1, 0.5, log=True), lr=Range(1e-3, 1e-1, log=True)), 20)
    assert all(set(c) == {"lam", "mcmi_lr"} and 1e-3 <= c["mcmi_lr"] <= 1e-1 for c in configs)


def test_kd_space_returns_gamma_as_one_minus_alpha():
    configs = sample(partial(kd_space, temperature=Range(1, 10), alpha=Range(0.1, 1.0)), 30)
    for c in configs:
        assert set(c) == {"temperature", "alpha", "gamma"}
        assert 1 <= c["temperature"] <= 10 and c["gamma"] == pytest.approx(1 - c["alpha"])


@pytest.mark.parametrize("critic", ["separable", "concat"])
def test_mimkd_critic_parameters_are_conditional_on_the_critic(critic):
    configs = [c for c in sample(mimkd_space, 80) if c["critic"] == critic]
    assert configs
    other = "concat" if critic == "separable" else "separable"
    for c in configs:
        assert {f"{critic}_depth", f"{critic}_width"} <= set(c)
        assert not any(k.startswith(other) for k in c)
        assert ("separable_embed" in c) == (critic == "separable")


def test_mimkd_beta_local_only_when_local_critics_exist():
    configs = sample(mimkd_space, 80)
    assert {c["local_layers"] for c in configs} == set(LAYER_SUBSETS)
    for c in configs:
        assert ("beta_local" in c) == (c["local_layers"] != "none")
        assert isinstance(c["critic"], str) and isinstance(c["local_layers"], str)


def test_known_good_points_are_drawn_first_and_spaces_pickle():
    point = mimkd_points()[0]
    assert sample(mimkd_space, 1, [point])[0] == {**point, "gamma": pytest.approx(0.1)}
    space = partial(mimkd_space, beta=Range(0.5, 2.0, log=True))
    assert pickle.loads(pickle.dumps(space)).keywords["beta"] == Range(0.5, 2.0, log=True)


@pytest.mark.parametrize("bounds, log, fragment", [
    ((1.0, 1.0), False, "empty"), ((2.0, 1.0), False, "empty"), ((-1.0, 1.0), False, ">= 0"),
    ((0.0, 1.0), True, "positive"),
])
def test_bad_ranges_are_one_clear_error(bounds, log, fragment):
    with pytest.raises(UserError, match=fragment):
        Range(*bounds, log=log).check("--x-range")


def test_configs_map_onto_jobs():
    job = mcmi_job_for(MCMIJob(arch="resnet8"), {"lam": 0.5, "mcmi_lr": 0.01})
    assert job.mcmi.lam == 0.5 and job.recipe().lr == 0.01 and job.recipe().epochs == 20
    student = student_job_for(StudentJob(), {"temperature": 2.0, "alpha": 0.7, "gamma": 0.3})
    assert (student.kd.temperature, student.kd.alpha, student.kd.gamma) == (2.0, 0.7, 0.3) and student.mimkd is None
    mimkd = mimkd_for(None, {"critic": "concat", "concat_depth": 3, "concat_width": 256, "separable_embed": 64,
                             "local_layers": "-3,-2", "beta_global": 2.0})
    assert mimkd == MIMKDConfig(critic="concat", critic_depth=3, critic_width=256, local_layers=("-3", "-2"),
                                beta_global=2.0)
    assert decode_layers(encode_layers(())) == () and decode_layers("none") == ()
