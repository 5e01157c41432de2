"""The record a search keeps beside its Tune experiment: how it was started and how far it got.

`kdtune-search.json` holds the argv, the MLflow parent run, the stage reached (search -> confirm ->
done), the search stage's outcome and the confirmation stage's plan, batches and results. Every
resume reads it, so a stage that finished is never run again; it is rewritten atomically.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "kdtune-search.json"
SEARCHING, CONFIRMING, DONE = "search", "confirm", "done"


@dataclass
class SearchState:
    argv: list[str]
    parent_run_id: str
    tracking_uri: str
    tracking_uri_option: str | None = None
    stage: str = SEARCHING
    outcome: dict | None = None  # the search stage's trials and best trial, once it ended
    confirm: dict = field(default_factory=dict)  # data, candidates, seeds, batches, results

    @classmethod
    def read(cls, folder: Path) -> SearchState | None:
        path = folder / STATE_FILE
        if not path.is_file():
            return None
        saved = json.loads(path.read_text())
        saved.setdefault("tracking_uri_option", saved["tracking_uri"])  # files from before the option was kept
        return cls(**{k: v for k, v in saved.items() if k in cls.__dataclass_fields__})

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, default=str))
        tmp.replace(folder / STATE_FILE)
