"""Links into the MLflow UI that open on what a search's user wants to see, with nothing to pick first.

- The trials view: the experiment's runs page (model-training view) filtered to this search's trial
  runs, best objective first, with the searched parameters, result columns and outcome as columns.
  It is MLflow's own shared view: the state lives in an experiment tag, the link names its key.
- The compare view of the search's trial runs that ran every epoch: parallel coordinates of the
  differing parameters against the first metric every run shares, which is the objective (see
  `RunDescription`). A stopped trial's last value is an earlier epoch's, so it stays out of that plot.
- The confirmation view: the confirmation runs grouped by configuration (their mean test accuracy per
  group), with the configuration, seed and test accuracies as columns.
A database store has no UI of its own: links point at `mlflow ui` on the address the user gives (`--ui-url`).
"""
from __future__ import annotations

import json
import shlex
import time
import urllib.parse
from collections.abc import Sequence

from search.options import DEFAULT_UI_URL, METRIC, TIME_ATTR
from search.tracking import (
    CONFIG_LABEL_TAG, CONFIRM_ROLE, FIRST_POINT_TAG, OUTCOME_TAG, ROLE_TAG, SEARCH_TAG, SEED_TAG, TRIAL_ROLE,
    is_server,
)
from trainables.metrics import STUDENT_TEST_ACC, TEACHER_TEST_ACC

SHARED_VIEW_TAG = "mlflow.sharedViewState."  # + key: a runs-page view MLflow's UI restores from the link
CONFIRM_VIEW_SUFFIX = "-confirm"  # the confirmation view's key: the parent run's id and this
ML_MODE = {"workflowType": "machine_learning"}  # MLflow 3.17 picks its model-training pages by this parameter only


def ui_base(tracking_uri: str, ui_url: str = DEFAULT_UI_URL) -> str:
    """The UI's address: the tracking server itself, or where `mlflow ui` serves a database store (`ui_url`)."""
    return (tracking_uri if is_server(tracking_uri) else ui_url).rstrip("/")


def open_ui_hint(tracking_uri: str, ui_url: str = DEFAULT_UI_URL) -> str:
    """What to run before a link works ('' when a tracking server already serves the UI): `mlflow ui` on the
    host and port of `ui_url`."""
    if is_server(tracking_uri):
        return ""
    address = urllib.parse.urlsplit(ui_url)
    host = f" --host {address.hostname}" if address.hostname not in (None, "127.0.0.1", "localhost") else ""
    port = f" --port {address.port}" if address.port not in (None, 5000) else ""
    return f"mlflow ui --backend-store-uri {shlex.quote(tracking_uri)}{host}{port}"


def trials_filter(parent_run_id: str) -> str:
    """MLflow search syntax for the trial runs of one search."""
    return f"tags.`{SEARCH_TAG}` = '{parent_run_id}' and tags.`{ROLE_TAG}` = '{TRIAL_ROLE}'"


def trials_view_state(parent_run_id: str, params: Sequence[str], columns: Sequence[str]) -> dict:
    """The runs page's state: this search's trials, best objective first, the columns that tell them apart."""
    metrics = [METRIC, *(c for c in columns if c != METRIC)]
    return {
        "searchFilter": trials_filter(parent_run_id),
        "orderByKey": f"metrics.`{METRIC}`",
        "orderByAsc": False,
        "selectedColumns": [*(f"params.`{p}`" for p in params), *(f"metrics.`{m}`" for m in metrics),
                            f"tags.`{OUTCOME_TAG}`", f"tags.`{FIRST_POINT_TAG}`"],
    }


def save_view(mlflow_client, experiment_id: str, key: str, name: str, state: dict) -> str:
    """Save a runs-page view on the experiment under `key` as MLflow 3.17's named saved view: its link opens it, and
    the experiment page's "Views" menu lists it by `name`, so the plain experiment page leads to it too."""
    now = int(time.time() * 1000)
    existing = mlflow_client.get_experiment(experiment_id).tags.get(SHARED_VIEW_TAG + key)
    try:
        created = int(json.loads(existing)["createdAt"]) if existing else now
    except (ValueError, KeyError, TypeError):
        created = now
    envelope = {"name": name, "createdAt": created, "updatedAt": now, "state": json.dumps(state)}
    mlflow_client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + key, json.dumps(envelope))
    return key


def view_state(mlflow_client, experiment_id: str, key: str) -> dict:
    """The state of a view `save_view` saved."""
    return json.loads(json.loads(mlflow_client.get_experiment(experiment_id).tags[SHARED_VIEW_TAG + key])["state"])


def share_trials_view(mlflow_client, experiment_id: str, parent_run_id: str, params: Sequence[str],
                      columns: Sequence[str], search: str) -> str:
    """Save the trials view of search `search` on the experiment (keyed by its parent run) and return its key."""
    return save_view(mlflow_client, experiment_id, parent_run_id, f"trials, best first · {search}",
                     trials_view_state(parent_run_id, params, columns))


def confirm_view_state(parent_run_id: str) -> dict:
    """The runs page's state for the confirmation: its runs grouped by configuration (the group's row shows the mean),
    best test accuracy first, with the configuration, seed and test accuracies as columns."""
    return {
        "searchFilter": f"tags.`{SEARCH_TAG}` = '{parent_run_id}' and tags.`{ROLE_TAG}` = '{CONFIRM_ROLE}'",
        "orderByKey": f"metrics.`{STUDENT_TEST_ACC}`",
        "orderByAsc": False,
        "selectedColumns": [f"tags.`{CONFIG_LABEL_TAG}`", f"tags.`{SEED_TAG}`", f"metrics.`{STUDENT_TEST_ACC}`",
                            f"metrics.`{TEACHER_TEST_ACC}`", f"tags.`{OUTCOME_TAG}`"],
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": CONFIG_LABEL_TAG}]},
    }


def share_confirm_view(mlflow_client, experiment_id: str, parent_run_id: str, search: str) -> str:
    """Save the confirmation view of search `search` on the experiment and return its key."""
    return save_view(mlflow_client, experiment_id, parent_run_id + CONFIRM_VIEW_SUFFIX,
                     f"confirmation by configuration · {search}",
                     confirm_view_state(parent_run_id))


def view_url(base: str, experiment_id: str, key: str) -> str:
    """A saved runs-page view, in MLflow's model-training mode."""
    query = urllib.parse.urlencode({**ML_MODE, "viewStateShareKey": key})
    return f"{base}/#/experiments/{experiment_id}/runs?{query}"


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """One run's page, in MLflow's model-training mode."""
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{urllib.parse.urlencode(ML_MODE)}"


def compare_url(base: str, experiment_id: str, run_ids: Sequence[str]) -> str:
    compact = {"separators": (",", ":")}
    query = urllib.parse.urlencode({"runs": json.dumps(list(run_ids), **compact),
                                    "experiments": json.dumps([experiment_id], **compact), **ML_MODE})
    return f"{base}/#/compare-runs?{query}"


def trial_run_ids(mlflow_client, experiment_id: str, parent_run_id: str, epochs: int = 0) -> list[str]:
    """The search's trial runs that trained at least `epochs` student epochs, best objective first."""
    query = trials_filter(parent_run_id) + (f" and metrics.`{TIME_ATTR}` >= {epochs}" if epochs else "")
    runs = mlflow_client.search_runs([experiment_id], filter_string=query,
                                     order_by=[f"metrics.`{METRIC}` DESC"], max_results=1000)
    return [run.info.run_id for run in runs]
