"""Every trial's learning curve as one Parquet table, `NAME/trials.parquet`: the data `search.replay` scores
search strategies on, and what a finished search on a GPU cluster leaves for anyone to replay.

One row per (stage, trial, phase, epoch): the search stage's trials and the confirmation runs, a λ
trial's teacher epochs (phase `teacher`, compute the search spends) before its student epochs (phase
`student`), and a diverged trial's last report (phase `diverged`, the 0 the sampler saw). The table is
rebuilt from Tune's per-trial `result.json` files, keeping the last report of each epoch, so a trial
restarted from an older checkpoint still has each epoch exactly once.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distill.errors import UserError
from search.options import METRIC, TIME_ATTR
from search.outcomes import is_number
from trainables.common import DIVERGED_KEY
from trainables.metrics import IMAGES_PER_SEC, STUDENT, TEACHER, TEACHER_EPOCH
from trainables.overrides import CONFIRM_KEY, SEED_KEY

TABLE_FILE = "trials.parquet"
METADATA_KEY = b"kdtune"  # the table's schema metadata: which search wrote it, its parameters and their scales
SEARCH_STAGE, CONFIRM_STAGE = "search", "confirm"
DIVERGED_PHASE = "diverged"
SECONDS = "seconds"  # what the epoch took, as Tune timed it (training, evaluation, checkpoint)
KEYS = ("stage", "trial_id", "config_key", "seed", "phase", "epoch", TIME_ATTR, SECONDS, "outcome")
RESULT_FILE = "result.json"


def reports(trial_folder: Path) -> list[dict]:
    """The reports Tune wrote for one trial (JSON lines; a line cut by a crash is skipped)."""
    found = []
    for line in (trial_folder / RESULT_FILE).read_text().splitlines():
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if isinstance(report, dict):
            found.append(report)
    return found


def phase_of(report: dict) -> tuple[str, int] | None:
    """(phase, epoch in that phase) of one report; None for a report that is no epoch."""
    if report.get(DIVERGED_KEY):
        return DIVERGED_PHASE, int(report.get(TIME_ATTR) or 0)
    if report.get(TIME_ATTR):
        return STUDENT, int(report[TIME_ATTR])
    if report.get(TEACHER_EPOCH):
        return TEACHER, int(report[TEACHER_EPOCH])
    return None


def trial_rows(trial_folder: Path, stage: str, outcome: str, search_seed: int) -> list[dict]:
    """One row per epoch of one trial, in order, each epoch once (the last report of it wins)."""
    by_epoch: dict[tuple[str, int], dict] = {}
    for report in reports(trial_folder):
        where = phase_of(report)
        if where is not None:
            by_epoch.pop(where, None)
            by_epoch[where] = report  # re-inserted: a repeated epoch takes its latest place
    rows = []
    for (phase, epoch), report in by_epoch.items():
        config = dict(report.get("config") or {})
        metrics = {k: v for k, v in report.items()
                   if (k.startswith((f"{TEACHER}_", f"{STUDENT}_")) or k == IMAGES_PER_SEC) and is_number(v)}
        rows.append({
            "stage": stage, "trial_id": str(report.get("trial_id", trial_folder.name)),
            "config_key": str(config.pop(CONFIRM_KEY)) if CONFIRM_KEY in config else None,
            "seed": int(config.pop(SEED_KEY, search_seed)), "phase": phase, "epoch": epoch,
            TIME_ATTR: epoch if phase == STUDENT else (0 if phase == TEACHER else epoch),
            SECONDS: float(report.get("time_this_iter_s") or 0.0), "outcome": outcome,
            **{f"param:{k}": v for k, v in config.items()}, **metrics,
        })
    return rows


def experiment_rows(folder: Path, stage: str, outcomes: dict[str, str], search_seed: int) -> list[dict]:
    """Rows of every trial of one Tune experiment folder; `outcomes` maps trial ids to how each ended."""
    if not folder.is_dir():
        return []
    rows = []
    for trial_folder in sorted(p for p in folder.iterdir() if (p / RESULT_FILE).is_file()):
        trial = trial_rows(trial_folder, stage, "", search_seed)
        for row in trial:
            row["outcome"] = outcomes.get(row["trial_id"], "")
        rows += trial
    return rows


def to_table(rows: Iterable[dict], metadata: dict) -> pa.Table:
    """The rows as an Arrow table: fixed columns first, then the parameters (named as in the trial config), then
    every metric; `metadata` (search, parameters, log scales) goes in the schema."""
    rows = list(rows)
    params = sorted({k for row in rows for k in row if k.startswith("param:")})
    metrics = sorted({k for row in rows for k in row if k not in KEYS and not k.startswith("param:")})
    columns = {key: [row.get(key) for row in rows] for key in (*KEYS, *params, *metrics)}
    arrays = {name.removeprefix("param:"): column_array(values) for name, values in columns.items()}
    table = pa.table(arrays)
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()})


def column_array(values: list) -> pa.Array:
    """One column; a parameter that is a number in some trials and a word in others is kept as words."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values])


def write(folder: Path, rows: list[dict], metadata: dict) -> Path:
    """`folder/trials.parquet`, written under a temporary name and renamed into place."""
    path = folder / TABLE_FILE
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(to_table(rows, metadata), tmp)
    tmp.replace(path)
    return path


def require_curve_columns(table: pa.Table, path: Path) -> None:
    """What a replay or an early-epoch analysis needs of any table: `seed`, `student_epoch` (integers) and
    `student_val_acc` (numbers); anything else is one UserError naming the column."""
    missing = [c for c in ("seed", TIME_ATTR, METRIC) if c not in table.column_names]
    if missing:
        raise UserError(f"{path} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}: a replay "
                        f"needs the parameters, seed, {TIME_ATTR} and {METRIC}")
    for name, numbers in (("seed", False), (TIME_ATTR, False), (METRIC, True)):
        found = table.schema.field(name).type
        if not (pa.types.is_integer(found) or pa.types.is_null(found) or (numbers and pa.types.is_floating(found))):
            raise UserError(f"{path}: column {name} holds {found}, not {'numbers' if numbers else 'integers'}")


def check_rows(table: pa.Table, path: Path, params: list[str]) -> None:
    """A table a replay can learn from: some finite scores, and each curve point once (a trial's epoch, or a
    configuration's seed's epoch, in one stage); a table whose rows repeat would weigh those trials twice."""
    scores = table.column(METRIC).to_pylist()
    if not any(isinstance(v, (int, float)) and math.isfinite(v) for v in scores):
        raise UserError(f"{path}: {METRIC} is missing or NaN in every row, so nothing in it can be scored")
    key = ["trial_id"] if "trial_id" in table.column_names else [*params, "seed"]
    key += [c for c in ("stage", "phase", "epoch") if c in table.column_names] + [TIME_ATTR]
    seen: dict[str, int] = {}
    for index, row in enumerate(table.select(key).to_pylist()):
        point = json.dumps(row, sort_keys=True, default=str)
        if point in seen:
            shown = ", ".join(f"{k} {v}" for k, v in row.items())
            raise UserError(f"{path}: row {index} repeats row {seen[point]} ({shown}); a table holds each trial's "
                            "epoch once")
        seen[point] = index


def table_params(table: pa.Table, metadata: dict, path: Path, given: list[str] | None) -> list[str]:
    """The parameter columns of a table: those given (--params), else those its metadata names; each must exist."""
    params = given or metadata.get("params")
    if not params:
        raise UserError(f"{path} does not say which columns are its parameters: name them with --params")
    if absent := [p for p in params if p not in table.column_names]:
        raise UserError(f"{path} has no column {absent[0]!r} (--params); its columns: {', '.join(table.column_names)}")
    return list(params)


def table_max_t(metadata: dict, path: Path, given: int | None) -> int:
    """The student epochs a trial of the table runs to the end: given (--max-t), else its metadata's."""
    if given is None and not metadata.get("max_t"):
        raise UserError(f"{path} does not say how many student epochs a trial runs to the end: give --max-t")
    max_t = int(given if given is not None else metadata["max_t"])
    if max_t <= 0:
        raise UserError(f"--max-t must be positive, got {max_t}")
    return max_t


def read(path: Path) -> tuple[pa.Table, dict]:
    """A table and its kdtune metadata (empty for a user's own table); a file that is not Parquet is one line."""
    if not path.is_file():
        raise UserError(f"table not found: {path}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise UserError(f"{path} is not a Parquet table: {err}") from None
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    try:
        metadata = json.loads(raw) if raw else {}
    except ValueError:
        metadata = {}
    return table, metadata if isinstance(metadata, dict) else {}

