"""Links into the MLflow UI that open on what a search's user wants to see, with nothing to pick first.

- The trials view: the experiment's runs page (model-training view) filtered to this search's trial
  runs, best objective first, with the searched parameters, result columns and outcome as columns.
  It is MLflow's own shared view: the state lives in an experiment tag, the link names its key.
- The compare view of the search's trial runs: parallel coordinates of the differing parameters
  against the first metric every run shares, which is the objective (see `RunDescription`).
"""
from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence

from search.options import METRIC
from search.tracking import FIRST_POINT_TAG, OUTCOME_TAG, PARENT_TAG, ROLE_TAG, TRIAL_ROLE

SHARED_VIEW_TAG = "mlflow.sharedViewState."  # + key: a runs-page view MLflow's UI restores from the link
DEFAULT_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store


def ui_base(tracking_uri: str) -> str:
    """The UI's address: the tracking server itself, or `mlflow ui` on its default port for a database store."""
    return tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else DEFAULT_UI


def open_ui_hint(tracking_uri: str) -> str:
    """What to run before a link works ('' when a tracking server already serves the UI)."""
    if tracking_uri.startswith(("http://", "https://")):
        return ""
    return f"mlflow ui --backend-store-uri {tracking_uri}"


def trials_filter(parent_run_id: str) -> str:
    """MLflow search syntax for the trial runs of one search."""
    return f"tags.`{PARENT_TAG}` = '{parent_run_id}' and tags.`{ROLE_TAG}` = '{TRIAL_ROLE}'"


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


def share_trials_view(mlflow_client, experiment_id: str, parent_run_id: str, params: Sequence[str],
                      columns: Sequence[str]) -> str:
    """Save the trials view on the experiment (keyed by the parent run) and return its key."""
    mlflow_client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + parent_run_id,
                                     json.dumps(trials_view_state(parent_run_id, params, columns)))
    return parent_run_id


def trials_view_url(tracking_uri: str, experiment_id: str, key: str) -> str:
    query = urllib.parse.urlencode({"workflowType": "machine_learning", "viewStateShareKey": key})
    return f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs?{query}"


def compare_url(tracking_uri: str, experiment_id: str, run_ids: Sequence[str]) -> str:
    compact = {"separators": (",", ":")}
    query = urllib.parse.urlencode({"runs": json.dumps(list(run_ids), **compact),
                                    "experiments": json.dumps([experiment_id], **compact)})
    return f"{ui_base(tracking_uri)}/#/compare-runs?{query}"


def trial_run_ids(mlflow_client, experiment_id: str, parent_run_id: str) -> list[str]:
    """The search's trial runs, best objective first."""
    runs = mlflow_client.search_runs([experiment_id], filter_string=trials_filter(parent_run_id),
                                     order_by=[f"metrics.`{METRIC}` DESC"], max_results=1000)
    return [run.info.run_id for run in runs]
