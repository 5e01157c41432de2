"""The record a search keeps beside its Tune experiment: how it was started and how far it got.

`kdtune-search.json` holds the argv, the MLflow parent run, the stage reached (search -> confirm ->
done), the search stage's `Outcome` and the confirmation stage's `ConfirmPlan` (its candidates, seeds,
batches and each run's result). Every resume reads it, so a stage that finished is never run again; it
is rewritten atomically. Its layout is these dataclasses, versioned by `STATE_FORMAT`: a file of another
format is refused in one line, never half-read.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from distill.errors import UserError

STATE_FILE = "kdtune-search.json"
STATE_FORMAT = 4  # 1: untyped outcome and plan, trial keys `lam`/`mcmi_lr`/`fine_tune` (before the teacher side);
# 2: trial and confirmation runs directly under the search's run, found by it (before stage runs);
# 3: the seed noise as sd and source, ties within 1.96 sd (before the multiple-comparison tie rule)
SEARCHING, CONFIRMING, DONE = STAGES = ("search", "confirm", "done")


def run_key(key: str, seed: int) -> str:
    """The name of one confirmation run in the plan's results: configuration key and seed."""
    return f"{key}/{seed}"


@dataclass
class Outcome:
    """What the search stage concluded: every trial's row (trial, state, outcome, config, metrics, reason), the
    pick rule's best trial and the trials tied with it, the measured seed noise, the test scores of the best trial
    when nothing is confirmed, how well each early epoch ranked the finished trials, and (with a teacher stage) the
    MLL teacher's validation CMI, the figure's reference line, and the configurations the tie rule kept out of the
    pooled noise (config key -> why)."""

    trials: list[dict]
    best: dict
    params: list[str]
    test: dict[str, float]
    pick: str
    noise: dict | None
    tied: list[dict]
    trust: list[dict] = field(default_factory=list)
    mll_val_cmi: float | None = None
    left_out: dict[str, str] = field(default_factory=dict)


@dataclass
class ConfirmBatch:
    """One Tune experiment of confirmation runs, (configuration key, seed) each; `done` once all have results."""

    name: str
    runs: list[tuple[str, int]]
    done: bool = False


@dataclass
class ConfirmPlan:
    """The confirmation stage: the data it trains on ("full" or "train"), the configurations (`confirm.Candidate`
    as plain data, baselines first), the paired seeds run so far, the race's first round and most seeds, its batches
    and each finished run's record by `run_key`."""

    data: str | None = None
    candidates: list[dict] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    first: int = 0
    most: int = 0
    batches: list[ConfirmBatch] = field(default_factory=list)
    results: dict[str, dict] = field(default_factory=dict)

    def result(self, key: str, seed: int) -> dict | None:
        return self.results.get(run_key(key, seed))

    def record(self, key: str, seed: int, record: dict) -> None:
        self.results[run_key(key, seed)] = record


def batch_name(name: object) -> str:
    """A confirmation batch's folder name as saved: one plain name inside the search's folder, never a path."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name \
            or name.startswith("."):
        raise ValueError(f"confirmation batch {name!r} is not a folder name")
    return name


@dataclass
class SearchState:
    argv: list[str]
    parent_run_id: str
    tracking_uri: str
    tracking_uri_option: str | None = None
    search: str | None = None  # the definition's name (distiller_dkd ...)
    command: str | None = None  # how it was started: python -m search.distiller --method dkd
    stage: str = SEARCHING
    outcome: Outcome | None = None  # the search stage's conclusion, once it ended
    confirm: ConfirmPlan = field(default_factory=ConfirmPlan)
    format: int = STATE_FORMAT

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
        if saved.get("format", 1) != STATE_FORMAT:
            raise UserError(f"{path} was written by another kdtune version (search state format "
                            f"{saved.get('format', 1)}; this one reads {STATE_FORMAT}), so it cannot be continued: "
                            "run the search again under a new --name (its summary, MLflow runs and trials.parquet "
                            "stay readable)")
        if saved.get("stage", SEARCHING) not in STAGES:
            raise UserError(f"{path} is damaged (stage {saved['stage']!r} is none of {', '.join(STAGES)}); it is not "
                            "a search state kdtune can continue")
        try:
            return cls._from_json(saved)
        except (TypeError, ValueError, KeyError, AttributeError) as err:
            raise UserError(f"{path} is damaged ({type(err).__name__}: {err}); it is not a search state kdtune "
                            "can continue") from None

    @classmethod
    def _from_json(cls, saved: dict) -> SearchState:
        values = {k: v for k, v in saved.items() if k in {f.name for f in fields(cls)}}
        if values.get("outcome") is not None:
            values["outcome"] = Outcome(**values["outcome"])
        plan = dict(values.get("confirm") or {})
        plan.update(first=int(plan.get("first", 0)), most=int(plan.get("most", 0)))  # the race's plan: numbers only
        plan["batches"] = [ConfirmBatch(batch_name(b["name"]), [(str(k), int(s)) for k, s in b["runs"]],
                                        bool(b.get("done"))) for b in plan.get("batches", [])]
        values["confirm"] = ConfirmPlan(**plan)
        return cls(**values)

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, default=str))
        tmp.replace(folder / STATE_FILE)
