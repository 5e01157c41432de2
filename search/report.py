"""The end of a search: one row per trial, a table, the best trial, and the summary files."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from search.options import METRIC, TIME_ATTR
from search.tracking import format_value


def trial_state(metrics: dict, error: object, max_t: int) -> str:
    if error is not None:
        return "error"
    if metrics.get("diverged"):
        return "diverged"
    return "complete" if metrics.get(TIME_ATTR, 0) >= max_t else "stopped early"


def trial_rows(grid, max_t: int) -> list[dict]:
    """Every trial of a Tune ResultGrid as {trial, state, config, metrics, checkpoint}, best first."""
    rows = []
    for result in grid:
        metrics = dict(result.metrics or {})
        rows.append({
            "trial": metrics.get("trial_id", Path(result.path).name if result.path else "?"),
            "state": trial_state(metrics, result.error, max_t),
            "config": dict(result.config or {}),
            "metrics": {k: v for k, v in metrics.items() if k.startswith(("teacher_", "student_"))},
            "reason": metrics.get("failure_reason") or (str(result.error).strip().splitlines()[-1] if result.error else ""),
            "checkpoint": result.checkpoint,
        })
    return sorted(rows, key=lambda r: -float(r["metrics"].get(METRIC, float("-inf"))))


def table(rows: Sequence[dict], params: Sequence[str], columns: Sequence[str]) -> str:
    """A plain-text table: trial, state, searched parameters, result columns."""
    header = ["trial", "state", *params, *columns]
    body = [[row["trial"], row["state"], *(format_value(row["config"].get(p, "")) for p in params),
             *(format_value(row["metrics"].get(c, "")) for c in columns)] for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *body)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)) for line in [header, *body]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def write_summary(folder: Path, summary: dict, text: str) -> list[Path]:
    """summary.json (machine-readable) and summary.md (what a person reads), written in place."""
    json_path, md_path = folder / "summary.json", folder / "summary.md"
    for path, payload in ((json_path, json.dumps(summary, indent=2, default=str)), (md_path, text)):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(payload)
        tmp.replace(path)
    return [json_path, md_path]
