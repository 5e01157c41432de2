"""Search spaces sample what they promise (ranges, scales, conditional parameters), and configs map onto jobs."""
from __future__ import annotations

import math
import pickle
from functools import partial

import optuna
import pytest

from distill.config import StudentJob, TeacherJob
from distill.teachers import TEACHER_OBJECTIVES, LabelSmoothingConfig, MCMIConfig
from distill.errors import UserError
from distill.losses import DISTILLERS, KDConfig, MIMKDConfig
from distill.typed_settings import decode_layers, encode_layers
from distill.losses.dkd import DKDConfig
from spaces import Range
from spaces.method import joint_space, method_space, method_spaces, teacher_space
from spaces.mimkd import LAYER_SUBSETS
from trainables.overrides import student_job_for, teacher_job_for

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


MCMI = method_spaces("teacher")["mcmi"]


def test_lambda_space_is_log_uniform_in_range_and_starts_at_the_papers_point():
    configs = sample(partial(teacher_space, space=MCMI), 200, [MCMI.known_good()])
    assert configs[0] == {"mcmi.lam": MCMIConfig().lam} == {"mcmi.lam": 0.25}
    lams = [c["mcmi.lam"] for c in configs[1:]]
    assert all(0.05 <= x <= 1.0 for x in lams) and set(configs[1]) == {"mcmi.lam"}
    below_geometric_mid = sum(x < math.sqrt(0.05) for x in lams) / len(lams)
    assert 0.35 < below_geometric_mid < 0.65  # log-uniform: half below the geometric midpoint (~0.22)


def test_a_teacher_space_searches_the_learning_rate_only_when_asked():
    configs = sample(partial(teacher_space, space=MCMI, lr=Range(1e-3, 1e-1, log=True)), 20)
    assert all(set(c) == {"mcmi.lam", "teacher_lr"} and 1e-3 <= c["teacher_lr"] <= 1e-1 for c in configs)


KD, MIMKD = method_spaces()["kd"], method_spaces()["mimkd"]
MIMKD_SEARCH = partial(joint_space, spaces=(MIMKD, KD))  # what search.mimkd samples


def test_kd_space_returns_the_ce_weight_as_one_minus_alpha():
    configs = sample(partial(method_space, space=KD), 30)
    for c in configs:
        assert set(c) == {"kd.temperature", "kd.alpha", "ce_weight"}
        assert 1 <= c["kd.temperature"] <= 10 and c["ce_weight"] == pytest.approx(1 - c["kd.alpha"])


@pytest.mark.parametrize("critic", ["separable", "concat"])
def test_mimkd_critic_parameters_are_its_config_fields_and_the_embedding_is_conditional_on_the_critic(critic):
    configs = [c for c in sample(MIMKD_SEARCH, 80) if c["mimkd.critic"] == critic]
    assert configs
    for c in configs:
        assert {"mimkd.critic_depth", "mimkd.critic_width"} <= set(c)
        assert 1 <= c["mimkd.critic_depth"] <= 3 and isinstance(c["mimkd.critic_width"], int)
        assert ("mimkd.critic_embed" in c) == (critic == "separable")
        student_job_for(StudentJob(distillers={"kd": KDConfig(), "mimkd": MIMKDConfig()}), c)  # a valid config


def test_mimkd_beta_local_only_when_local_critics_exist():
    configs = sample(MIMKD_SEARCH, 80)
    assert {c["mimkd.local_layers"] for c in configs} == set(LAYER_SUBSETS)
    for c in configs:
        assert ("mimkd.beta_local" in c) == (c["mimkd.local_layers"] != "none")
        assert isinstance(c["mimkd.critic"], str) and isinstance(c["mimkd.local_layers"], str)


def test_known_good_points_are_drawn_first_and_spaces_pickle():
    point = {**MIMKD.known_good(), **KD.known_good()}
    assert sample(MIMKD_SEARCH, 1, [point])[0] == {**point, "ce_weight": pytest.approx(0.1)}
    assert student_job_for(StudentJob(distillers={"kd": KDConfig(), "mimkd": MIMKDConfig()}), point).distillers == {
        "kd": KDConfig(), "mimkd": MIMKDConfig()}, "the first point is the configs' own defaults"
    assert pickle.loads(pickle.dumps(MIMKD_SEARCH)).keywords["spaces"] == (MIMKD, KD)


@pytest.mark.parametrize("bounds, log, fragment", [
    ((1.0, 1.0), False, "empty"), ((2.0, 1.0), False, "empty"), ((-1.0, 1.0), False, ">= 0"),
    ((0.0, 1.0), True, "positive"),
])
def test_bad_ranges_are_one_clear_error(bounds, log, fragment):
    with pytest.raises(UserError, match=fragment):
        Range(*bounds, log=log).check("--x-range")


def test_configs_map_onto_jobs():
    job = teacher_job_for(TeacherJob(arch="resnet8", objective=MCMIConfig()), {"mcmi.lam": 0.5, "teacher_lr": 0.01})
    assert job.objective.lam == 0.5 and job.recipe().lr == 0.01
    smoothed = teacher_job_for(TeacherJob(objective=MCMIConfig()), {"teacher_objective": "label_smoothing",
                                                                    "label_smoothing.eps": 0.2})
    assert smoothed.objective == LabelSmoothingConfig(eps=0.2)
    student = student_job_for(StudentJob(), {"kd.temperature": 2.0, "kd.alpha": 0.7, "ce_weight": 0.3})
    assert student.distillers == {"kd": KDConfig(alpha=0.7, temperature=2.0)} and student.ce() == 0.3
    mimkd = student_job_for(StudentJob(distillers={"mimkd": MIMKDConfig()}), {
        "mimkd.critic": "concat", "mimkd.critic_depth": 3, "mimkd.critic_width": 256,
        "mimkd.local_layers": "-3,-2", "mimkd.beta_global": 2.0}).distillers["mimkd"]
    assert mimkd == MIMKDConfig(critic="concat", critic_depth=3, critic_width=256, local_layers=("-3", "-2"),
                                beta_global=2.0)
    assert decode_layers(encode_layers(())) == () and decode_layers("none") == ()


def test_trial_keys_choose_distillers_and_a_misspelt_key_fails():
    both = student_job_for(StudentJob(), {"distillers": "kd+dkd", "dkd.beta": "2"})
    assert both.distillers == {"kd": KDConfig(), "dkd": DKDConfig(beta=2.0)} and both.ce() == KDConfig.CE_WEIGHT
    ce_only = student_job_for(StudentJob(), {"distillers": "none"})
    assert ce_only.distillers == {} and ce_only.ce() == 1.0
    with pytest.raises(UserError, match="dkd.beta set dkd, which the student does not use"):
        student_job_for(StudentJob(), {"dkd.beta": 2.0})
    with pytest.raises(UserError, match="kd has no setting 'temprature'"):
        student_job_for(StudentJob(), {"kd.temprature": 2.0})
    with pytest.raises(UserError, match="unknown distiller 'kdd'"):
        student_job_for(StudentJob(), {"distillers": "kdd"})


@pytest.mark.parametrize("method", sorted(method_spaces()))
def test_each_method_space_starts_at_the_published_defaults_and_stays_in_range(method):
    space = method_spaces()[method]
    configs = sample(partial(method_space, space=space), 40, [space.known_good()])
    published = student_job_for(StudentJob(distillers={}), {"distillers": method, **configs[0]}).distillers[method]
    assert published == DISTILLERS.get(method).Config(), "the first point is the config's own defaults"
    for c in configs:
        chosen = {name: c[space.key(name)] for name in space.choices}
        sampled = {space.key(name) for name in (*space.ranges, *space.choices) if space.active(name, chosen)}
        assert set(c) == sampled | set(space.constants(c) if space.constants else {})
        assert all(r.low <= c[space.key(name)] <= r.high for name, r in space.ranges.items() if space.key(name) in c)
        assert all(c[space.key(name)] in options for name, options in space.choices.items())
        student_job_for(StudentJob(distillers={}), {"distillers": method, **c})  # every point is a valid config
    assert pickle.loads(pickle.dumps(partial(method_space, space=space))).keywords["space"] == space


@pytest.mark.parametrize("objective", sorted(method_spaces("teacher")))
def test_each_teacher_space_starts_at_the_objectives_defaults_and_every_point_is_a_valid_teacher(objective):
    space = method_spaces("teacher")[objective]
    configs = sample(partial(teacher_space, space=space), 40, [space.known_good()])
    template = TeacherJob(objective=TEACHER_OBJECTIVES.get(objective).Config())
    assert teacher_job_for(template, configs[0]).objective == template.objective, "the first point: the defaults"
    for c in configs:
        assert all(r.low <= c[space.key(name)] <= r.high for name, r in space.ranges.items())
        teacher_job_for(template, c)  # every point is a valid config


def test_a_teacher_range_the_objective_refuses_is_one_clear_error():
    with pytest.raises(UserError, match=r"label_smoothing.eps must be in \[0, 1\), got 1.5"):
        method_spaces("teacher")["label_smoothing"].with_ranges({"eps": Range(0.0, 1.5)})
