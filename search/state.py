"""The record a search keeps beside its Tune experiment: how it was started and how far it got.

`kdtune-search.json` holds the argv, the MLflow parent run, the stage reached (search -> confirm ->
done), the search stage's outcome and the confirmation stage's plan, batches and results. Every
resume reads it, so a stage that finished is never run again; it is rewritten atomically.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from distill.errors import UserError

STATE_FILE = "kdtune-search.json"
SEARCHING, CONFIRMING, DONE = "search", "confirm", "done"


@dataclass
class SearchState:
    argv: list[str]
    parent_run_id: str
    tracking_uri: str
    tracking_uri_option: str | None = None
    search: str | None = None  # the definition's name (distiller_dkd ...); None in files from before it was kept
    command: str | None = None  # how it was started: python -m search.distiller --method dkd
    stage: str = SEARCHING
    outcome: dict | None = None  # the search stage's trials and best trial, once it ended
    confirm: dict = field(default_factory=dict)  # data, candidates, seeds, batches, results

    @classmethod
    def read(cls, folder: Path) -> SearchState | None:
        path = folder / STATE_FILE
        if not path.is_file():
            return None
        try:
            saved = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UserError(f"{path} is damaged ({err}); it is not a search state kdtune can continue") from None
        required = {"argv": list, "parent_run_id": str, "tracking_uri": str}
        if not isinstance(saved, dict) or any(not isinstance(saved.get(k), t) for k, t in required.items()) \
                or not all(isinstance(a, str) for a in saved["argv"]):
            raise UserError(f"{path} is not a kdtune search state (it lacks the argv, parent run or tracking URI "
                            "a search writes); it cannot be continued")
        saved.setdefault("tracking_uri_option", saved["tracking_uri"])  # files from before the option was kept
        return cls(**{k: v for k, v in saved.items() if k in cls.__dataclass_fields__})

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, default=str))
        tmp.replace(folder / STATE_FILE)
