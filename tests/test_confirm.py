"""The confirmation stage's pure parts: which configurations it re-trains, its seeds and batches, its analysis;
the search's Optuna reporter; and the trial-config keys a confirmation run adds."""
from __future__ import annotations

import json
import math
from functools import partial

import numpy as np
import optuna
import pytest

from distill.config import StudentJob, TeacherJob
from distill.teachers import MCMIConfig
from distill.losses import KDConfig, MIMKDConfig
from search import kd_temperature, mcmi_lambda, mimkd, outcomes, picks, ties
from search.confirm import candidates, missing_runs, seeds_for
from search.state import ConfirmBatch, ConfirmPlan
from search.report import confirmation_analysis, confirmation_metrics, confirmation_table, confirmation_text
from search.tuning import StudentEpochOptuna, StudyLinks
from spaces import Range
from search.mcmi_lambda import LAM, SPACE
from spaces.method import teacher_space
from trainables.overrides import student_job_for, teacher_job_for


def row(trial: str, state: str, acc: float, **config) -> dict:
    """A search trial; `lam=` stands for the λ search's key."""
    config = {(LAM if key == "lam" else key): value for key, value in config.items()}
    return {"trial": trial, "state": state, "config": config, "metrics": {"student_val_acc": acc}, "reason": ""}


ROWS = [
    row("a", "complete", 0.70, lam=0.3),
    row("b", "stopped early", 0.90, lam=0.8),  # higher, but ASHA stopped it: ranked after every complete trial
    row("c", "complete", 0.74, lam=0.5),
    row("d", "complete", 0.72, lam=0.5),  # the same configuration as c: confirmed once, at c's accuracy
    row("e", "diverged", 0.0, lam=2.0),
    row("f", "complete", 0.71, lam=0.25),
]


def lambda_baselines() -> tuple:
    return mcmi_lambda.DEFINITION.baselines(None), mcmi_lambda.DEFINITION.label_names


def ranked(rows: list[dict], params=(LAM,)) -> picks.Answer:
    return picks.pick(rows, list(params))


def test_candidates_are_the_baselines_then_the_best_distinct_configurations():
    chosen = candidates(*lambda_baselines(), ranked(ROWS), top=3)
    assert [c.key for c in chosen] == ["control", "mll_teacher", "top1", "top2", "top3"]
    assert [c.config for c in chosen[2:]] == [{LAM: 0.5}, {LAM: 0.25}, {LAM: 0.3}]
    assert (chosen[2].label, chosen[2].search_trial, chosen[2].search_val) == ("λ=0.5", "c", 0.74)
    assert chosen[0].config == {LAM: 0.0} and chosen[0].baseline and chosen[0].search_val is None
    assert chosen[1].config == {"teacher_stage": False}
    assert [c.config for c in candidates(*lambda_baselines(), ranked(ROWS), top=5)[2:]][-1] == {LAM: 0.8}


def test_a_search_trial_that_ran_the_baseline_lends_it_its_search_accuracy():
    kd_rows = [row("k", "complete", 0.8, **{"kd.temperature": 4.0, "kd.alpha": 0.9, "ce_weight": 0.1}),
               row("m", "complete", 0.7, **{"kd.temperature": 2.0, "kd.alpha": 0.5, "ce_weight": 0.5})]
    chosen = candidates(kd_temperature.DEFINITION.baselines(None), kd_temperature.DEFINITION.label_names, ranked(kd_rows, ("kd.temperature", "kd.alpha")), top=3)
    assert [c.key for c in chosen] == ["kd_default", "top1"]  # the known-good point is the baseline, not a top config
    assert (chosen[0].search_trial, chosen[0].search_val) == ("k", 0.8)
    assert chosen[1].label == "T=2, α=0.5"


def seeded(values: dict[float, list[float]]) -> list[dict]:
    """Complete trials of a grid run with seeds: λ -> its final values, seed 0, 1, ..."""
    return [row(f"{lam}/{seed}", "complete", acc, lam=lam, seed=seed) for lam, accs in values.items()
            for seed, acc in enumerate(accs)]


def test_repeated_seeds_rank_by_their_mean_and_tie_what_their_spread_cannot_separate():
    """Three configurations on the same seeds 0, 1, 2: paired, so the noise is the residual of configuration + seed
    effects. In hundredths the residuals are (−8, 4, 4)/9, (16, −8, −8)/9 and (−8, 4, 4)/9: their squares sum to
    64/9 over (3−1)(3−1) = 4 degrees of freedom, sd 4/3 hundredths. λ 0.2 trails λ 0.3 by a third of a point (tied);
    λ 0.5 trails by ten points (not)."""
    rows = seeded({0.2: [0.80, 0.81, 0.82], 0.3: [0.83, 0.80, 0.81], 0.5: [0.70, 0.71, 0.72]})
    answer = ranked(rows)
    assert answer.best["config"] == {LAM: 0.3, "seed": 0}  # mean 0.8133 above 0.81, though 0.2's 0.82 is a seed's max
    assert [r["config"][LAM] for r in answer.tied] == [0.3, 0.2]
    assert (answer.noise.sd, answer.noise.degrees, answer.noise.paired) == (pytest.approx(0.04 / 3), 4, True)
    chosen = candidates(*lambda_baselines(), answer, top=3)
    assert [c.config for c in chosen if not c.baseline] == [{LAM: 0.3}, {LAM: 0.2}]  # the tied ones, no seed key


def test_the_tie_constant_is_dunnetts_for_each_configurations_own_seeds():
    """Pooled seed sd 0.01 over λ 0.2 and 0.3 (three seeds each; 4 degrees of freedom); λ 0.5 ran once, so nothing is
    paired. λ 0.3 trails the best by 2 points, 2.45 se of a difference of two 3-seed means: beyond 1.96 (the old
    rule's normal quantile) but within Dunnett's one-sided t constant for its two comparisons at 4 degrees of
    freedom, 2.653 — tied. λ 0.5, one value, trails by 3 points, 2.60 se of a 3-seed mean against one value: beyond
    its own constant, 2.500 (the correlation of its comparisons is 3/4, not 1/2) — not tied."""
    rows = seeded({0.2: [0.79, 0.80, 0.81], 0.3: [0.770, 0.780, 0.790]}) + [row("one", "complete", 0.77, lam=0.5)]
    answer = ranked(rows)
    assert (answer.noise.sd, answer.noise.degrees, answer.noise.paired) == (pytest.approx(0.01), 4, False)
    assert [r["config"][LAM] for r in answer.tied] == [0.2, 0.3]
    constants = {json.loads(c.key)[LAM]: c.constant for c in answer.ties.comparisons}
    assert constants[0.3] == pytest.approx(2.6533, abs=1e-3) and constants[0.5] == pytest.approx(2.4998, abs=1e-3)


def test_a_configuration_exactly_at_the_tie_margin_is_tied(monkeypatch):
    rows = [row(f"{lam}/{i}", "complete", acc, lam=lam)  # no seed: unpaired, pooled sd 0.25 (exact in binary)
            for lam, accs in {0.2: [0.25, 0.5, 0.75], 0.3: [0.125, 0.375, 0.625]}.items() for i, acc in enumerate(accs)]
    spread = 0.25 * math.sqrt(1 / 3 + 1 / 3)
    gap = 0.5 - (0.125 + 0.375 + 0.625) / 3
    near = [gap / spread]
    for _ in range(4):
        near += [math.nextafter(near[-1], math.inf)]
    exact = next(z for z in near if z * spread == gap)
    monkeypatch.setattr(ties, "many_to_one_quantile", lambda *args: exact)  # the margin exactly the gap
    assert [r["config"][LAM] for r in ranked(rows).tied] == [0.2, 0.3]
    monkeypatch.setattr(ties, "many_to_one_quantile", lambda *args: math.nextafter(exact, 0))
    assert [r["config"][LAM] for r in ranked(rows).tied] == [0.2]


def test_the_seed_noise_is_pooled_over_the_degrees_of_freedom_by_hand():
    """Unpaired (the seeds differ): pooled variance = sum of (n_i - 1) s_i^2 over sum of (n_i - 1): λ 0.2 with 3 seeds
    (s² 0.0001), λ 0.3 with 2 (s² 0.0002), λ 0.5 with one (no spread of its own): (2 · 0.0001 + 1 · 0.0002) / 3."""
    rows = seeded({0.2: [0.79, 0.80, 0.81], 0.3: [0.70, 0.72], 0.5: [0.6]})
    noise = picks.seed_noise(rows)
    assert noise.sd == pytest.approx(math.sqrt((2 * 0.0001 + 0.0002) / 3))
    assert (noise.degrees, noise.paired, len(noise.pooled)) == (3, False, 2)
    assert picks.seed_noise(seeded({0.2: [0.79, 0.81], 0.3: [0.6]})) is None, "one degree of freedom is too few"
    assert picks.seed_noise(seeded({0.2: [0.79, 0.81], 0.3: [0.6, 0.62]})) is None, "paired: (2-1)(2-1) is too few"
    assert picks.seed_noise(seeded({0.2: [0.79, 0.81, 0.8], 0.3: [0.6, 0.62, 0.61]})).sd == pytest.approx(0)
    assert picks.config_key({LAM: 0.2, "seed": 3}) == picks.config_key({"seed": 4, LAM: 0.2})


def test_only_trials_that_produced_a_student_are_ranked_finished_first():
    rows = [row("done", "complete", 0.70, lam=0.1), row("stopped", "stopped early", 0.95, lam=0.2),
            row("late", "stopped early", 0.60, lam=0.3), row("nan", "complete", math.nan, lam=0.4),
            row("bad", "diverged", 0.99, lam=0.5), row("err", "error", 0.99, lam=0.6),
            row("best", "complete", 0.75, lam=0.7)]
    answer = ranked(rows)
    assert [r["trial"] for r in answer.ranked] == ["best", "done", "stopped", "late"]
    assert [r["trial"] for r in picks.finished(rows)] == ["done", "best"]
    assert ranked([]).best is None and ranked([]).tied == []
    only_stopped = ranked([row("s", "stopped early", 0.9, lam=0.1)])
    assert only_stopped.best["trial"] == "s" and only_stopped.tied == [] and only_stopped.noise is None


def test_one_seed_per_configuration_measures_no_noise_and_confirms_the_top_k():
    answer = ranked(ROWS)
    assert answer.noise is None and [r["trial"] for r in answer.tied] == ["c"]
    assert [c.key for c in candidates(*lambda_baselines(), answer, top=2)] == ["control", "mll_teacher", "top1", "top2"]


def test_the_model_pick_ranks_by_a_gaussian_process_and_falls_back_below_four_configurations():
    noisy = [row(str(i), "complete", acc, lam=lam) for i, (lam, acc) in
             enumerate([(0.01, 0.60), (0.02, 0.62), (0.05, 0.70), (0.1, 0.74), (0.2, 0.71), (0.5, 0.80), (1.0, 0.50)])]
    answer = picks.pick(noisy, [LAM], frozenset({LAM}), "model")
    assert answer.rule == "model" and len(answer.ranked) == 7
    assert answer.best["config"][LAM] in (0.1, 0.2, 0.5)  # smoothed: a middle λ, never the collapsed λ = 1
    assert picks.pick(noisy, [LAM], frozenset({LAM}), "model") == answer  # seeded: the same answer
    assert picks.pick(noisy[:3], [LAM], frozenset({LAM}), "model").rule == "last"


def test_the_model_pick_smooths_a_lone_spike_away_and_fits_from_four_configurations_on(monkeypatch):
    """λ = 0.7's 0.80 sits between 0.62 and 0.60: the Gaussian process ranks the smooth rise around λ = 0.1 above it,
    where the last value alone would pick the spike. It is fitted from four configurations on, with the search's
    seed."""
    lams, accs = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.7, 1.0], [0.70, 0.74, 0.78, 0.79, 0.77, 0.62, 0.80, 0.60]
    rows = [row(str(i), "complete", acc, lam=lam, seed=0) for i, (lam, acc) in enumerate(zip(lams, accs))]
    assert picks.pick(rows, [LAM, "seed"], frozenset({LAM}), "model").best["config"][LAM] == 0.1
    assert picks.pick(rows, [LAM, "seed"], frozenset({LAM}), "last").best["config"][LAM] == 0.7
    seeds = []
    fit = picks.gaussian_process
    monkeypatch.setattr(picks, "gaussian_process", lambda *args: seeds.append(args[-1]) or fit(*args))
    assert picks.pick(rows[:4], [LAM], frozenset({LAM}), "model", seed=7).rule == "model" and seeds == [7]
    assert picks.pick(rows[:3], [LAM], frozenset({LAM}), "model", seed=7).rule == "last" and seeds == [7]
    assert picks.pick([], [LAM], frozenset({LAM}), "model").rule == "last"


def test_a_configuration_is_its_values_in_any_order_without_its_seed():
    assert picks.config_key({"a": 1, "b": 2.0, "seed": 1}) == picks.config_key({"b": 2.0, "a": 1})
    assert picks.config_key({"depth": np.int64(2)}) == '{"depth": "2"}', "numpy scalars from a grid are keys too"
    assert picks.config_key({"a": 1}) != picks.config_key({"a": 2})


def test_the_models_inputs_by_hand():
    """Each searched parameter scaled to [0, 1] on the search's own scale: λ on log10, its 0 put a decade below the
    smallest positive λ; T linear; a constant column of zeros; a categorical one-hot over its sorted levels."""
    rows = [{"config": {LAM: lam, "T": t, "fixed": 2.0, "critic": critic}} for lam, t, critic in
            [(0.0, 1.0, "separable"), (0.01, 3.0, "concat"), (1.0, 2.0, "separable")]]
    x = picks.features(rows, [LAM, "T", "fixed", "critic"], frozenset({LAM}))
    expected = np.array([[0.0, 0.0, 0.0, 0.0, 1.0],  # λ: log10 of (0.001, 0.01, 1) -> -3, -2, 0
                         [1 / 3, 1.0, 0.0, 1.0, 0.0],
                         [1.0, 0.5, 0.0, 0.0, 1.0]])
    np.testing.assert_allclose(x, expected, atol=1e-12)
    linear = picks.features(rows, [LAM], frozenset())
    np.testing.assert_allclose(linear[:, 0], [0.0, 0.01, 1.0])
    np.testing.assert_allclose(picks.features(rows[:1] * 2, [LAM], frozenset({LAM})), [[0.0], [0.0]])
    np.testing.assert_allclose(picks.features(rows, [], frozenset()), np.zeros((3, 1)))
    negative = [{"config": {LAM: v}} for v in (-1.0, -0.5)]
    np.testing.assert_allclose(picks.features(negative, [LAM], frozenset({LAM}))[:, 0], [0.0, 1.0]), "no log of ≤ 0"


def test_the_model_is_the_documented_gaussian_process():
    """Matern 5/2 with one length scale per input (0.5 to start, within 0.05..20), times a constant (1, within
    1e-3..1e3), plus white noise (0.1, within 1e-6..10), fitted to normalised values with one restart, seeded."""
    rows = [row(str(i), "complete", acc, lam=lam) for i, (lam, acc) in
            enumerate([(0.01, 0.60), (0.1, 0.74), (0.5, 0.80), (1.0, 0.50)])]
    model, x = picks.gaussian_process(rows, [LAM], frozenset({LAM}), seed=3)
    kernel = model.kernel
    assert (kernel.k1.k1.constant_value, kernel.k1.k1.constant_value_bounds) == (1.0, (1e-3, 1e3))
    assert list(kernel.k1.k2.length_scale) == [0.5] and kernel.k1.k2.length_scale_bounds == (0.05, 20.0)
    assert kernel.k1.k2.nu == 2.5
    assert (kernel.k2.noise_level, kernel.k2.noise_level_bounds) == (0.1, (1e-6, 10.0))
    assert (model.normalize_y, model.n_restarts_optimizer, model.random_state) == (True, 1, 3)
    assert x.shape == (4, 1) and model.y_train_.dtype == np.float64
    np.testing.assert_allclose(model._y_train_mean, np.mean([0.60, 0.74, 0.80, 0.50]))


def test_seeds_never_reuse_the_search_seed_and_extensions_add_only_missing_runs():
    assert seeds_for(0, 3) == [1, 2, 3] and seeds_for(7, 2) == [8, 9]
    plan = ConfirmPlan(candidates=[{"key": "control"}, {"key": "top1"}], seeds=[1, 2], first=2, most=2, batches=[
        ConfirmBatch("confirm-1", [("control", 1), ("top1", 1), ("control", 2), ("top1", 2)], done=True)])
    assert missing_runs(plan, 0.01) == []
    plan.first = plan.most = 3
    plan.candidates.append({"key": "top2"})
    assert missing_runs(plan, 0.01) == [("top2", 1), ("top2", 2), ("control", 3), ("top1", 3), ("top2", 3)]
    plan.batches.append(ConfirmBatch("confirm-2", [("top2", 1)]))  # batched, not yet run: not asked for twice
    assert missing_runs(plan, 0.01) == [("top2", 2), ("control", 3), ("top1", 3), ("top2", 3)]


def record(acc: float, teacher: float | None = None) -> dict:
    metrics = {"student_test_acc": acc, **({"teacher_test_acc": teacher} if teacher is not None else {})}
    return {"state": "complete", "trial": "x", "reason": "", "metrics": metrics}


def test_analysis_estimates_each_configuration_and_pairs_it_with_each_baseline():
    plan = ConfirmPlan(data="full", seeds=[1, 2, 3], candidates=[
        {"key": "control", "label": "λ=0 control", "baseline": True, "description": "d", "config": {LAM: 0.0},
         "search_trial": None, "search_val": None},
        {"key": "top1", "label": "λ=0.3", "baseline": False, "description": "d", "config": {LAM: 0.3},
         "search_trial": "a", "search_val": 0.8}],
        results={"control/1": record(0.70, 0.9), "control/2": record(0.71, 0.9), "control/3": record(0.69, 0.9),
                 "top1/1": record(0.73, 0.8), "top1/2": record(0.73, 0.8),
                 "top1/3": {"state": "diverged", "trial": "y", "reason": "student diverged: loss is not finite",
                            "metrics": {}}})
    analysis = confirmation_analysis(plan, 0.01)
    control, top = analysis["configs"]
    assert control["estimates"]["test_acc"]["mean"] == pytest.approx(0.70)
    assert control["estimates"]["test_acc"]["sd"] == pytest.approx(0.01)
    assert top["seeds"] == {1: 0.73, 2: 0.73} and 3 in top["failed"] and "diverged" in top["failed"][3]
    (comparison,) = analysis["comparisons"]
    # λ=0.3 lost seed 3, so the seeds no longer pair up: pooled variance (2 · 0.0001 + 1 · 0) / 3 over 3 degrees of
    # freedom; the difference 0.73 − 0.70 has se √(0.0002/3 · (1/2 + 1/3)); Tukey's constant for 2 configurations is
    # t(0.975, 3) = 3.18245.
    half = 3.1824463 * math.sqrt(0.0002 / 3 * (1 / 2 + 1 / 3))
    assert comparison["difference"]["n"] == 2 and comparison["difference"]["mean"] == pytest.approx(0.03)
    assert comparison["difference"]["ci_low"] == pytest.approx(0.03 - half, rel=1e-5)
    assert comparison["word"] == "better"
    assert comparison["verdict"].startswith("λ=0.3 vs the λ=0 control: better, by +3.00 points (95% CI +0.63 to "
                                            "+5.37, 2 seeds)")
    metrics, tags = confirmation_metrics(analysis)
    assert metrics["confirm_top1_test_acc_mean"] == pytest.approx(0.73) and metrics["confirm_control_test_acc_n"] == 3
    assert {"confirm_top1_test_acc_ci_low", "confirm_top1_test_acc_ci_high", "confirm_control_teacher_test_acc_mean",
            "confirm_top1_vs_control_diff_mean"} <= set(metrics)
    assert tags["confirm_top1_vs_control_verdict"] == comparison["verdict"]
    table = confirmation_table(analysis).splitlines()
    assert table[2].startswith("λ=0 control (baseline)") and "70.00 ± 1.00" in table[2] and "80.00" in table[3]
    assert [c["decision"] for c in analysis["configs"]] == ["worse", "better"]
    assert analysis["ties"]["best"] == "λ=0.3" and analysis["ties"]["tied"] == []
    assert "λ=0.3 is better than every other configuration" in confirmation_text(analysis)
    assert "Seeds: 3 paired seeds each (λ=0 control 3, λ=0.3 3; --confirm-max-seeds 3 adds none)." in \
        confirmation_text(analysis)


def test_the_confirmation_names_a_winner_only_when_every_other_configuration_is_below_it():
    plan = ConfirmPlan(data="full", seeds=[1, 2, 3], candidates=[
        {"key": k, "label": k, "baseline": k == "control", "description": "d", "config": {}, "search_trial": None,
         "search_val": None} for k in ("control", "top1")])
    for key, acc in (("control", 0.70), ("top1", 0.75)):
        for seed in (1, 2, 3):
            plan.record(key, seed, record(acc + 0.001 * seed))
    analysis = confirmation_analysis(plan, 0.01)
    assert (analysis["ties"]["best"], analysis["ties"]["tied"], analysis["ties"]["worse"]) == ("top1", [], ["control"])
    assert "top1 is better than every other configuration" in confirmation_text(analysis)


def test_student_epoch_optuna_records_student_epochs_their_fate_and_their_links():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.InMemoryStorage()
    space = partial(teacher_space, space=SPACE.with_ranges({"lam": Range(0.1, 1.0, log=True)}))
    links = StudyLinks(run_of=lambda t: f"run-{t}", run_url=lambda run: f"http://ui/#/runs/{run}",
                       outcome=partial(outcomes.outcome, max_t=3, reference_acc=0.8))
    searcher = StudentEpochOptuna(space=space, metric="student_val_acc", mode="max", storage=storage, study_name="s",
                                  max_t=3, links=links, about={"search": "python -m search.mcmi_lambda"})
    searcher.suggest("t1")
    for iteration, epoch, acc in [(1, 0, math.nan), (2, 0, math.nan), (3, 1, 0.4), (4, 2, 0.5)]:
        searcher.on_trial_result("t1", {"training_iteration": iteration, "student_epoch": epoch, "student_val_acc": acc})
    # ASHA's result at max_t reaches the searcher only as the trial's completion: its epoch counts too.
    searcher.on_trial_complete("t1", {"training_iteration": 5, "student_epoch": 3, "student_val_acc": 0.6})
    searcher.suggest("t2")
    searcher.on_trial_complete("t2", {"training_iteration": 1, "student_epoch": 0, "student_val_acc": 0.0,
                                      "diverged": 1})
    searcher.suggest("t3")
    searcher.on_trial_result("t3", {"training_iteration": 1, "student_epoch": 1, "student_val_acc": 0.2})
    searcher.on_trial_complete("t3", {"training_iteration": 2, "student_epoch": 2, "student_val_acc": 0.3})
    searcher.suggest("t4")  # its teacher fell to 0.1 (the MLL teacher's 0.8): collapsed, whatever ASHA did
    searcher.on_trial_complete("t4", {"training_iteration": 2, "student_epoch": 1, "student_val_acc": 0.1,
                                      "teacher_val_acc": 0.1})
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.metric_names == ["student_val_acc"] and study.user_attrs == {"search": "python -m search.mcmi_lambda"}
    complete, diverged, stopped, collapsed = study.trials
    assert complete.intermediate_values == {1: 0.4, 2: 0.5, 3: 0.6} and complete.value == 0.6
    assert complete.state == optuna.trial.TrialState.COMPLETE
    assert complete.user_attrs == {"ray_trial_id": "t1", "mlflow_run_id": "run-t1",
                                   "mlflow_run_url": "http://ui/#/runs/run-t1", "outcome": "complete"}
    assert diverged.intermediate_values == {} and diverged.value == 0.0
    assert diverged.state == optuna.trial.TrialState.COMPLETE  # scored 0, so TPE steers away from it
    assert stopped.state == optuna.trial.TrialState.PRUNED and stopped.intermediate_values == {1: 0.2, 2: 0.3}
    assert stopped.value is None  # its epoch-2 accuracy is no final value: no plot of values shows it
    assert stopped.user_attrs["asha"] == "stopped after student epoch 2 of 3"
    assert (stopped.user_attrs["outcome"], diverged.user_attrs["outcome"]) == ("stopped early", "diverged")
    assert collapsed.state == optuna.trial.TrialState.PRUNED and collapsed.user_attrs["outcome"] == "teacher collapsed"


def test_confirmation_keys_set_the_seed_skip_the_fine_tune_and_turn_mimkd_off():
    job = teacher_job_for(TeacherJob(arch="resnet8", objective=MCMIConfig()),
                          {LAM: 0.0, "seed": 3, "confirm": "control"})
    assert job.objective == MCMIConfig(lam=0.0) and job.runtime.seed == 3
    base = StudentJob(arch="resnet8", distillers={"kd": KDConfig(temperature=2.0), "mimkd": MIMKDConfig()})
    assert student_job_for(base, {"seed": 2}).runtime.seed == 2
    assert student_job_for(base, {}).runtime.seed == 0
    kd_only = student_job_for(base, {**mimkd.DEFINITION.baselines(None)[0].config, "seed": 1})
    assert kd_only.distillers == {"kd": KDConfig()} and kd_only.ce() == 0.1


def test_the_summary_names_ties_or_says_it_cannot_tell():
    from search.runner import tie_line

    names = mcmi_lambda.DEFINITION.label_names
    answer = ranked(seeded({0.2: [0.80, 0.81, 0.82], 0.3: [0.83, 0.80, 0.81], 0.5: [0.70, 0.71, 0.72]}))
    line = tie_line(answer.best, answer.tied, answer.noise, answer.ties.left_out, names)
    assert line.startswith("Ties: the seeds cannot tell λ=0.2 from the best, λ=0.3 (multiple comparison with the "
                           "best: the set holds the truly best configuration at least 95% of the time; seed sd 1.33 "
                           "points (configuration + seed residual, paired seeds, 4 degrees of freedom, 3 configurations))")
    alone = ranked(seeded({0.2: [0.80, 0.81, 0.82], 0.5: [0.70, 0.71, 0.72]}))
    assert tie_line(alone.best, alone.tied, alone.noise, {}, names).startswith("Ties: none.")
    single = ranked(ROWS)
    assert "Each configuration ran with one seed" in tie_line(single.best, single.tied, single.noise, {}, names)
    wild = ranked(seeded({0.1: [0.70, 0.71, 0.70, 0.71], 0.2: [0.79, 0.80, 0.79, 0.80], 0.3: [0.79, 0.78, 0.79, 0.78],
                          0.4: [0.78, 0.77, 0.78, 0.77], 0.9: [0.99, 0.40, 0.95, 0.49]}))
    # λ=0.9's mean (0.7075) is above λ=0.1's (0.705), but its seeds disagree by ±30 points: it ranks last
    assert [r["config"][LAM] for r in wild.ranked][::4] == [0.2, 0.3, 0.4, 0.1, 0.9]
    assert wild.ranked[-1]["config"][LAM] == 0.9 and 0.9 not in [r["config"][LAM] for r in wild.tied]
    line = tie_line(wild.best, wild.tied, wild.noise, wild.ties.left_out, names)
    assert line.endswith("Kept out of the pooled noise: λ=0.9 (unstable: its seeds spread 30.58 points, far more "
                         "than the others'; not compared).")


def test_the_parent_run_logs_the_accuracies_and_leaves_the_teachers_probability_scores_to_its_summary():
    plan = ConfirmPlan(data="full", seeds=[1, 2], candidates=[
        {"key": "control", "label": "control", "baseline": True, "description": "d", "config": {},
         "search_trial": None, "search_val": None}])
    for seed in (1, 2):
        plan.record("control", seed, {"state": "complete", "trial": "x", "reason": "", "metrics": {
            "student_test_acc": 0.8, "teacher_test_acc": 0.9, "teacher_test_nll": 0.5, "teacher_test_ece": 0.03}})
    analysis = confirmation_analysis(plan, 0.01)
    assert {"test_acc", "teacher_test_nll", "teacher_test_ece"} <= set(analysis["configs"][0]["estimates"])
    metrics, _ = confirmation_metrics(analysis)
    assert not any("nll" in name or "ece" in name for name in metrics)
    assert {"confirm_control_test_acc_mean", "confirm_control_teacher_test_acc_mean"} <= set(metrics)
    assert "teacher test NLL" in confirmation_text(analysis)
