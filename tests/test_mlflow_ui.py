"""What a person sees in MLflow: outcomes, run names, the parameter figure, and links into a real store."""
from __future__ import annotations

import json
import math
import urllib.parse

import mlflow
import pytest

from search import mlflow_ui, outcomes, plots, report, tracking
from search.mcmi_lambda import DEFINITION, LAM
from trainables.common import DIVERGED_KEY

MLL_ACC = 0.76


@pytest.mark.parametrize(("metrics", "error", "expected"), [
    ({"student_epoch": 15, "teacher_val_acc": 0.74}, None, outcomes.COMPLETE),
    ({"student_epoch": 6, "teacher_val_acc": 0.74}, None, outcomes.STOPPED),
    ({"student_epoch": 15, "teacher_val_acc": 0.36}, None, outcomes.COLLAPSED),  # 0.36 < 0.8 * 0.76
    ({"student_epoch": 6, "teacher_val_acc": 0.36}, None, outcomes.COLLAPSED),
    ({"student_epoch": 15, "teacher_val_acc": 0.61}, None, outcomes.COMPLETE),  # 0.61 is just above 0.608
    ({"student_epoch": 0, DIVERGED_KEY: 1, "teacher_val_acc": 0.1}, None, outcomes.DIVERGED),
    ({"student_epoch": 3}, "worker died", outcomes.ERROR),
    ({"student_epoch": 15}, None, outcomes.COMPLETE),  # a KD trial reports no teacher accuracy
])
def test_outcome_names_what_became_of_a_trial(metrics, error, expected):
    assert outcomes.outcome(metrics, error, max_t=15, reference_acc=MLL_ACC) == expected


def test_no_collapse_is_judged_without_the_mll_teachers_accuracy():
    assert outcomes.outcome({"student_epoch": 15, "teacher_val_acc": 0.01}, None, 15, None) == outcomes.COMPLETE
    assert "not judged" in outcomes.describe_collapse(None)
    assert "76.00%" in outcomes.describe_collapse(MLL_ACC)


def test_trial_runs_are_named_by_what_differs_then_their_trial_id():
    described = tracking.trial_description(DEFINITION.label_names, {LAM: 0.30412, "teacher_lr": 0.01}, "0b53ed38")
    assert described.name == "λ=0.3041, lr=0.01 · 0b53ed38"
    assert described.tags == {tracking.ROLE_TAG: tracking.TRIAL_ROLE} and described.objective == "student_val_acc"
    assert tracking.trial_description({}, {"b": 2, "a": 1}, "t1").name == "a=1, b=2 · t1"
    assert tracking.trial_description({}, {}, "t1").name == "trial t1"


def test_settings_become_params_and_never_curves():
    result = {"student_epoch": 3, "student_epochs": 15, "student_val_acc": 0.5, "teacher_epochs": 20}
    assert tracking.stage_settings(result) == {"student_epochs": 15, "teacher_epochs": 20}
    assert tracking.stage_steps(result) == {"student": (3, {"student_epoch": 3, "student_val_acc": 0.5})}


def trial(name: str, lam: float, outcome: str, student: float, teacher: float) -> dict:
    state = outcome if outcome in outcomes.STATES else outcomes.COMPLETE
    return {"trial": name, "state": state, "outcome": outcome, "config": {LAM: lam},
            "metrics": {"student_val_acc": student, "teacher_val_cmi": teacher}}


ROWS = [trial("a", 0.1, outcomes.COMPLETE, 0.90, 0.20), trial("b", 0.2, outcomes.COMPLETE, 0.93, 0.25),
        trial("c", 0.3, outcomes.STOPPED, 0.88, 0.30), trial("d", 0.43, outcomes.COLLAPSED, 0.10, 2.5)]


def test_one_collapsed_trial_does_not_squash_the_others_range():
    points = [(r, r["config"][LAM], r["metrics"]["student_val_acc"]) for r in ROWS]
    low, high = plots.healthy_range(points)
    assert 0.10 < low < 0.88 and 0.93 < high < 1.0  # the axis spans the healthy trials, with a margin


def test_the_parameter_figure_labels_lambda_marks_the_best_and_keeps_the_legend_outside(tmp_path):
    plt = plots.pyplot()
    fig, ax = plt.subplots()
    plots.draw_panel(ax, ROWS, LAM, "student_val_acc", ROWS[1])
    labels = ax.get_legend_handles_labels()[1]
    assert "best (b)" in labels and "teacher collapsed" in labels
    low, high = ax.get_ylim()
    assert low > 0.10 and [t.get_text() for t in ax.texts] == ["0.1"]  # the collapsed trial, pinned and labelled
    plt.close(fig)
    path = plots.search_scatter(ROWS, [LAM], DEFINITION.plot_metrics, {LAM}, DEFINITION.label_names,
                                tmp_path / "lam.png")
    assert path is not None and path.stat().st_size > 10_000


@pytest.fixture
def store(tmp_path):
    """A real SQLite MLflow store with a search: a parent, three trial runs and a confirmation run."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = tracking.experiment_id(uri, "kdtune-test", tmp_path)
    client = mlflow.MlflowClient(uri)
    parent = tracking.start_parent(uri, experiment, "search", {"storage_path": str(tmp_path)})
    trials = {}
    for trial_id, acc, epochs in (("t1", 0.5, 4), ("t2", 0.9, 4), ("t3", 0.7, 2)):  # t3 stopped at epoch 2
        run = client.create_run(experiment, run_name=trial_id, tags={tracking.SEARCH_TAG: parent,
                                                                     tracking.ROLE_TAG: tracking.TRIAL_ROLE})
        tracking.log_metrics(client, run.info.run_id, {"student_epoch": epochs, "student_val_acc": acc}, epochs)
        trials[trial_id] = run.info.run_id
    client.create_run(experiment, run_name="confirm", tags={tracking.SEARCH_TAG: parent,
                                                            tracking.ROLE_TAG: tracking.CONFIRM_ROLE})
    return uri, client, experiment, parent, trials


def test_the_experiment_is_a_model_training_one(store):
    uri, client, experiment, *_ = store
    assert client.get_experiment(experiment).tags[tracking.EXPERIMENT_KIND_TAG] == tracking.TRAINING_KIND


def test_the_trials_view_selects_this_searchs_trials_best_first(store):
    uri, client, experiment, parent, trials = store
    key = mlflow_ui.share_trials_view(client, experiment, parent, [LAM], DEFINITION.columns, "lam-search")
    envelope = json.loads(client.get_experiment(experiment).tags[mlflow_ui.SHARED_VIEW_TAG + key])
    assert envelope["name"] == "trials, best first · lam-search" and isinstance(envelope["createdAt"], int)
    state = mlflow_ui.view_state(client, experiment, key)
    found = client.search_runs([experiment], state["searchFilter"], order_by=["metrics.`student_val_acc` DESC"])
    assert [run.info.run_id for run in found] == [trials["t2"], trials["t3"], trials["t1"]]
    assert state["selectedColumns"][:2] == ["params.`mcmi.lam`", "metrics.`student_val_acc`"]
    url = mlflow_ui.view_url(mlflow_ui.ui_base(uri), experiment, key)
    assert url.startswith(f"http://127.0.0.1:5000/#/experiments/{experiment}/runs?")
    assert urllib.parse.parse_qs(url.split("?", 1)[1]) == {"workflowType": ["machine_learning"],
                                                           "viewStateShareKey": [key]}


def test_the_compare_link_names_the_trial_runs_that_ran_every_epoch(store):
    uri, client, experiment, parent, trials = store
    assert mlflow_ui.trial_run_ids(client, experiment, parent) == [trials["t2"], trials["t3"], trials["t1"]]
    ids = mlflow_ui.trial_run_ids(client, experiment, parent, epochs=4)  # t3's 0.7 is an epoch-2 value
    assert ids == [trials["t2"], trials["t1"]]
    url = mlflow_ui.compare_url(mlflow_ui.ui_base("http://mlflow.example:5000/"), experiment, ids)
    assert url.startswith("http://mlflow.example:5000/#/compare-runs?")
    query = urllib.parse.parse_qs(url.split("?", 1)[1])
    assert json.loads(query["runs"][0]) == ids and json.loads(query["experiments"][0]) == [experiment]
    assert query["workflowType"] == ["machine_learning"]
    assert mlflow_ui.open_ui_hint(uri) == f"mlflow ui --backend-store-uri {uri}"
    assert mlflow_ui.open_ui_hint("http://mlflow.example:5000") == ""


def test_the_objectives_placeholder_is_logged_first_and_replaced_by_the_first_epoch(store):
    uri, client, experiment, parent, _ = store
    run = client.create_run(experiment).info.run_id
    tracking.log_metrics(client, run, {"student_val_acc": math.nan}, 0, finite=False)
    tracking.log_metrics(client, run, {"teacher_val_acc": 0.7}, 1)
    assert math.isnan(client.get_run(run).data.metrics["student_val_acc"])
    tracking.log_metrics(client, run, {"student_val_acc": 0.8}, 1)
    assert list(client.get_run(run).data.metrics) == ["student_val_acc", "teacher_val_acc"]
    assert client.get_run(run).data.metrics["student_val_acc"] == 0.8


def test_a_run_whose_trial_an_interruption_left_unsaved_is_dropped_and_no_other(tmp_path):
    """A trial logged as started just before the driver died, which the resumed Tune experiment never ran: its
    still-RUNNING run goes (soft-deleted), so every trial has one run; finished runs and known trials stay."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("kdtune-test")
    parent = client.create_run(experiment, run_name="search").info.run_id

    def child(trial: str, finished: bool) -> str:
        run = client.create_run(experiment, tags={tracking.SEARCH_TAG: parent, tracking.ROLE_TAG: tracking.TRIAL_ROLE,
                                                  tracking.TRIAL_TAG: trial}).info.run_id
        if finished:
            client.set_terminated(run)
        return run

    known, orphan, finished_elsewhere = child("a", False), child("b", False), child("c", True)
    assert tracking.drop_orphans(uri, experiment, parent, tracking.TRIAL_ROLE, {"a"}) == 1
    assert client.get_run(orphan).info.lifecycle_stage == "deleted"
    assert all(client.get_run(run).info.lifecycle_stage == "active" for run in (known, finished_elsewhere))


def test_the_trials_table_puts_finished_trials_first_and_compares_all_at_the_last_common_epoch():
    """A trial ASHA stopped at epoch 2 with 0.60 is not shown as beating one that finished at 0.55: finished trials
    come first, the stopped one says its epoch, and every trial's value at epoch 2 is beside the last one."""
    def row(trial, state, curve):
        return {"trial": trial, "state": state, "outcome": state, "config": {LAM: 0.1},
                "metrics": {"student_val_acc": curve[-1], "student_epoch": len(curve)}, "curve": curve}

    rows = sorted([row("stopped", outcomes.STOPPED, [0.3, 0.60]), row("done", outcomes.COMPLETE, [0.2, 0.4, 0.55])],
                  key=report.rank)
    assert [r["trial"] for r in rows] == ["done", "stopped"]
    header, _, done, stopped = report.table(rows, [LAM], ("student_epoch", "student_val_acc")).splitlines()
    assert header.split()[-5:] == ["student_val_acc", "student_val_acc", "@", "epoch", "2"]
    assert done.split()[-1] == "0.4" and stopped.split()[-1] == "0.6"
    assert "stopped at epoch 2" in stopped
    assert report.common_epoch([row("a", outcomes.COMPLETE, [0.1, 0.2])]) is None  # nothing to align


def test_an_enqueued_point_is_marked_as_such_in_mlflow_and_the_table():
    """λ = 0.25 is tried first because the paper uses it: its run and its table row say so, a sampled λ's do not."""
    points = [{LAM: 0.25}]
    enqueued = tracking.trial_description(DEFINITION.label_names, {LAM: 0.25}, "t1", points)
    sampled = tracking.trial_description(DEFINITION.label_names, {LAM: 0.31}, "t2", points)
    assert enqueued.tags[tracking.FIRST_POINT_TAG].startswith("enqueued") and tracking.FIRST_POINT_TAG not in sampled.tags
    rows = [{"trial": "t1", "state": "complete", "outcome": "complete", "config": {LAM: 0.25}, "first_point": True,
             "metrics": {"student_val_acc": 0.9}}]
    assert "t1 (first point)" in report.table(rows, [LAM], ("student_val_acc",))


def test_the_summary_fits_the_parent_runs_description_verdicts_first():
    head = "# mcmi_lambda: s\n\n## Confirmation\n\n- λ=0.3 beats the λ=0 control\n"
    analysis = {"comparisons": [{"verdict": "λ=0.3 beats the λ=0 control"}], "ties": None}
    short = report.run_description(head + "\n## Search trials\n\n| a |\n", analysis)
    assert short.startswith("**Answer**") and short.splitlines()[2] == "- λ=0.3 beats the λ=0 control"
    assert short.endswith(head + "\n## Search trials\n\n| a |\n")
    long = head + "\n" + report.TRIALS_HEADING + "\n\n" + "| row |\n" * 3000
    described = report.run_description(long, analysis)
    assert len(described) <= 8000 and head in described and "summary.md" in described
    assert report.markdown_table([["a", "b|c"], [1, 2]]).splitlines() == ["| a | b\\|c |", "| --- | --- |", "| 1 | 2 |"]


def test_the_links_open_model_training_pages_at_the_ui_the_user_serves():
    base = mlflow_ui.ui_base("sqlite:////x/mlflow.db", "http://10.0.0.5:8080")
    assert base == "http://10.0.0.5:8080"
    assert mlflow_ui.ui_base("http://server:5000/", "http://x:1") == "http://server:5000"  # a server serves its UI
    assert mlflow_ui.run_url(base, "3", "abc") == (
        "http://10.0.0.5:8080/#/experiments/3/runs/abc?workflowType=machine_learning")
    assert mlflow_ui.open_ui_hint("sqlite:////x/mlflow.db", "http://10.0.0.5:8080") == (
        "mlflow ui --backend-store-uri sqlite:////x/mlflow.db --host 10.0.0.5 --port 8080")
    state = mlflow_ui.confirm_view_state("p1")
    assert "tags.`kdtune.role` = 'confirm'" in state["searchFilter"]
    assert state["orderByKey"] == "metrics.`student_test_acc`"
    assert state["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": tracking.CONFIG_LABEL_TAG}]


def test_each_stage_holds_its_runs_under_one_run_of_its_own(store):
    uri, client, experiment, parent, _ = store
    trials = tracking.stage_run(client, experiment, parent, tracking.TRIAL_ROLE)
    assert tracking.stage_run(client, experiment, parent, tracking.TRIAL_ROLE) == trials  # found again, not doubled
    confirmation = tracking.stage_run(client, experiment, parent, tracking.CONFIRM_ROLE)
    assert confirmation != trials and tracking.stage_run(client, experiment, parent, tracking.TEACHER_ROLE) == parent
    runs = {run.info.run_id: run for run in client.search_runs([experiment], f"tags.`{tracking.ROLE_TAG}` = 'stage'")}
    assert {run.info.run_name for run in runs.values()} == {"search trials", "confirmation"}
    assert all(run.data.tags[tracking.PARENT_TAG] == parent for run in runs.values())
    tracking.end_stages(uri, experiment, parent)
    assert {client.get_run(run).info.status for run in runs} == {"FINISHED"}
