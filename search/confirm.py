"""The confirmation stage: the search's top configurations and its baselines, re-trained over paired seeds.

Each (configuration, seed) is one Ray Tune trial of the search's own trainable, with the full recipe
(no ASHA), by default on train + validation, tested once at its last epoch. Seed s is the same for
every configuration (initialisation and data order), so differences are paired. The stage is a race
(`search.race`): every configuration runs `--confirm-seeds` N seeds, then the undecided ones one more
paired seed a round, up to `--confirm-max-seeds` M. Runs go in batches, one a round, each a Tune
experiment `NAME/confirm-<i>` recorded in the search's state: a resume restores an unfinished batch
and recomputes the race from the recorded results, and more seeds or configurations later become a
new batch of only the missing runs.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

from ray import tune
from ray.tune.search import Searcher

from distill.data import DataSplits, load_splits
from distill.errors import UserError
from search import console, outcomes, picks, race, trust
from search.race import seeds_for
from search.definition import Baseline
from search.options import METRIC, Jobs
from search.spec import SearchSpec
from search.state import ConfirmBatch, ConfirmPlan, SearchState
from search.outcomes import is_number
from search.progress import ConfirmProgress
from search.tracking import CONFIG_LABEL_TAG, CONFIG_TAG, CONFIRM_ROLE, ROLE_TAG, SEED_TAG, RunDescription, label_for
from search.tuning import RESTART_ADVICE, Interrupted, fit, reuse_workers, trial_ids
from trainables.common import DIVERGED_KEY, TEACHER_FILE
from trainables.overrides import CONFIRM_KEY, SEED_KEY, trains_teacher

KEPT = ("_test_", "_val_acc", "_val_cmi")  # what a confirmation run's record keeps of its final result


@dataclass(frozen=True)
class Candidate:
    """A configuration the stage re-trains: one of the search's best, or a baseline."""

    key: str  # ASCII, for metric names and tags: top1, top2, control ...
    label: str  # what a person reads: λ=0.304
    config: dict
    baseline: bool
    description: str
    search_trial: str | None = None  # the search trial that ran this configuration, if one did
    search_val: float | None = None  # its search-stage validation accuracy (the number the search chose by)


def candidates(baselines: Sequence[Baseline], label_names: dict[str, str], answer: picks.Answer,
               top: int) -> list[Candidate]:
    """The baselines (first), then the search's best distinct configurations that are not a baseline: at most `top`,
    and when the search measured its seed noise only those tied with its best (at least one)."""
    best_by_config: dict[str, dict] = {}
    for row in answer.ranked:
        best_by_config.setdefault(picks.config_key(row["config"]), row)
    chosen = []
    for baseline in baselines:
        match = best_by_config.pop(picks.config_key(baseline.config), None)
        chosen.append(Candidate(baseline.key, baseline.label, baseline.config, True, baseline.description,
                                *searched(match)))
    wanted = list(best_by_config.values())[:top]
    if answer.noise is not None:
        tied = {picks.config_key(row["config"]) for row in answer.tied}
        wanted = [row for row in wanted if picks.config_key(row["config"]) in tied] or wanted[:1]
    for rank, row in enumerate(wanted, 1):
        config = {k: v for k, v in row["config"].items() if k != SEED_KEY}  # each confirmation run sets its seed
        chosen.append(Candidate(f"top{rank}", label_for(config, label_names) or f"top {rank}",
                                config, False, f"the search's number {rank} by validation accuracy",
                                *searched(row)))
    return chosen


def searched(row: dict | None) -> tuple[str | None, float | None]:
    return (row["trial"], row["metrics"][METRIC]) if row else (None, None)


class FixedConfigs(Searcher):
    """Hands Tune a fixed list of configurations, one trial each, and remembers how many it gave out."""

    def __init__(self, configs: list[dict]) -> None:
        super().__init__()
        self.configs, self.given = list(configs), 0

    def suggest(self, trial_id: str) -> dict | str:
        if self.given >= len(self.configs):
            return Searcher.FINISHED
        self.given += 1
        return dict(self.configs[self.given - 1])

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Nothing to learn: the configurations are fixed."""

    def save(self, checkpoint_path: str) -> None:
        """JSON, not Tune's default pickle: restoring it can run nothing."""
        Path(checkpoint_path).write_text(json.dumps({"configs": self.configs, "given": self.given}))

    def restore(self, checkpoint_path: str) -> None:
        try:
            saved = json.loads(Path(checkpoint_path).read_text())
            configs, given = list(saved["configs"]), int(saved["given"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"{checkpoint_path} is not a confirmation batch's saved state ({err})") from None
        self.configs, self.given = configs, given


def confirm_description(labels: dict[str, str], config: dict, trial_id: str) -> RunDescription:
    """A confirmation run: its name (`confirm λ=0.304 · seed 2`), role, configuration and seed tags."""
    key, seed = str(config[CONFIRM_KEY]), str(config[SEED_KEY])
    label = labels.get(key, key)
    tags = {ROLE_TAG: CONFIRM_ROLE, CONFIG_TAG: key, CONFIG_LABEL_TAG: label, SEED_TAG: seed}
    return RunDescription(f"confirm {label} · seed {seed}", tags, dict(config))


def confirmation_data(jobs: Jobs, splits: DataSplits, data: str) -> tuple[Jobs, DataSplits]:
    """Jobs and splits of the confirmation runs: train + validation ("full") or the search's split ("train"),
    always with the test set, which each run scores once."""
    if data == "train":
        return jobs, splits
    full = replace(jobs.student.data, val_size=0)
    stage = replace(jobs.stage, job=replace(jobs.stage.job, data=full)) if jobs.stage else None
    return Jobs(teacher=jobs.teacher, stage=stage, student=replace(jobs.student, data=full)), load_splits(full)


def update_plan(spec: SearchSpec, state: SearchState) -> None:
    """Add the configurations and seeds the options now ask for, keeping every run planned before."""
    plan = state.confirm
    plan.data = plan.data or spec.confirm.data  # fixed once planned (the spec refuses a contradiction)
    known = {c["key"] for c in plan.candidates}
    wanted = candidates(spec.baselines, spec.definition.label_names,
                        spec.answer(state.outcome.trials, state.outcome.params), spec.confirm.top)
    plan.candidates += [asdict(c) for c in wanted if c.key not in known]
    plan.first = max(plan.first, spec.confirm.seeds)
    plan.most = max(plan.most, spec.confirm.max_seeds, plan.first)  # never fewer looks than it planned
    plan.seeds = seeds_for(spec.seed, max(len(plan.seeds), plan.first))


def missing_runs(plan: ConfirmPlan, margin: float) -> list[tuple[str, int]]:
    """The runs the race's next look needs that are in no batch yet, seed by seed, so an interrupted batch leaves
    whole pairs."""
    return unbatched(plan, race.race_of(plan, margin))


def unbatched(plan: ConfirmPlan, contest: race.Race) -> list[tuple[str, int]]:
    """The runs `contest` wants that no batch of `plan` holds yet."""
    batched = {(k, s) for batch in plan.batches for k, s in batch.runs}
    return [run for run in contest.wanted if run not in batched]


def teachers_folder(spec: SearchSpec) -> Path:
    """Where the first seed's own teacher of each confirmed configuration is kept, for the pictures."""
    return spec.experiment_dir / "confirm-teachers"


def keep_teacher(result, path: Path) -> None:
    """Copy a confirmation run's own teacher out of its Tune checkpoint (when it has one)."""
    if result.checkpoint is None:
        return
    with result.checkpoint.as_directory() as folder:
        weights = Path(folder) / TEACHER_FILE
        if weights.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(weights.read_bytes())


def confirmed_teachers(spec: SearchSpec, plan: ConfirmPlan) -> dict[str, Path]:
    """label -> weights of each confirmed configuration's own teacher (first seed), in plan order."""
    folder = teachers_folder(spec)
    return {c["label"]: folder / f"{c['key']}.pth" for c in plan.candidates
            if (folder / f"{c['key']}.pth").is_file()}


def run_record(result) -> dict:
    """What the report needs of one confirmation run's final result."""
    metrics = dict(result.metrics or {})
    state = outcomes.ERROR if result.error is not None else outcomes.DIVERGED if metrics.get(DIVERGED_KEY) \
        else outcomes.COMPLETE
    reason = metrics.get("failure_reason") or (str(result.error).strip().splitlines()[-1] if result.error else "")
    kept = {k: v for k, v in metrics.items() if any(mark in k for mark in KEPT) and is_number(v)}
    return {"state": state, "trial": metrics.get("trial_id", ""), "reason": reason, "metrics": kept}


def run_stage(spec: SearchSpec, state: SearchState, splits: DataSplits, teacher_weights: bytes,
              make_run_config, drop_orphans: Callable[[str, set[str]], int]) -> None:
    """Run the race: every planned run without a result, then each round the next look asks for, until it has
    decided or reached `--confirm-max-seeds` (`Interrupted` when the driver was stopped first);
    `drop_orphans(role, trial ids)` removes the MLflow runs of trials an interruption left unsaved."""
    update_plan(spec, state)
    plan, trainable = state.confirm, None
    while True:
        contest = race.race_of(plan, spec.confirm.margin)
        if missing := unbatched(plan, contest):
            if contest.looks:  # a later round: what the race decided so far, and who goes on
                console.say(race_progress(contest, {c["key"]: c["label"] for c in plan.candidates}))
            plan.seeds = sorted(set(plan.seeds) | {seed for _, seed in missing})
            plan.batches.append(ConfirmBatch(f"confirm-{len(plan.batches) + 1}", missing))
        state.write(spec.experiment_dir)
        pending = [b for b in plan.batches if not b.done]
        if not pending:
            return
        if trainable is None:
            jobs, data = confirmation_data(spec.jobs, splits, plan.data)
            trainable = spec.place(spec.definition.trainable,
                                   **spec.definition.trainable_inputs(jobs, data, teacher_weights))
        for batch in pending:
            announce(plan, batch)
            run_batch(spec, state, batch, trainable, make_run_config, drop_orphans)


def race_progress(contest: race.Race, labels: dict[str, str]) -> str:
    """One line between rounds: the words so far, and who gets the next paired seed."""
    words: dict[str, list[str]] = {}
    for key, decision in contest.decisions.items():
        words.setdefault(decision.word, []).append(labels[key])
    racing = sorted({labels[k] for k, _ in contest.wanted})
    seeds = sorted({s for _, s in contest.wanted})
    decided = "; ".join(f"{word}: {', '.join(names)}" for word, names in words.items())
    return (f"race after {contest.looks[-1].seeds} paired seeds: {decided or 'nothing decided yet'}; "
            f"undecided, one more seed each (seed {', '.join(map(str, seeds))}): {', '.join(racing)}")


def announce(plan: ConfirmPlan, batch: ConfirmBatch) -> None:
    """What a round runs, in one line."""
    keys, seeds = {k for k, _ in batch.runs}, sorted({s for _, s in batch.runs})
    how = f"{'train + validation' if plan.data == 'full' else 'train'}, full recipe, each tested once"
    console.say(f"confirmation {batch.name}: {len(batch.runs)} runs ({len(keys)} configurations, seeds {seeds}; "
                f"paired seeds race to at most {plan.most}), {how}")


def batch_progress(spec: SearchSpec, plan: ConfirmPlan, batch: ConfirmBatch) -> ConfirmProgress:
    """The round's progress line: its runs, and per configuration those the earlier rounds ran."""
    earlier = {c["key"]: sum(plan.result(c["key"], seed) is not None for seed in plan.seeds) for c in plan.candidates}
    return ConfirmProgress(batch.name, {c["key"]: c["label"] for c in plan.candidates}, earlier, batch.runs,
                           spec.jobs.student.recipe().epochs, spec.stage_epochs,
                           {c["key"]: c["config"] for c in plan.candidates})


def run_batch(spec: SearchSpec, state: SearchState, batch: ConfirmBatch, trainable, make_run_config,
              drop_orphans: Callable[[str, set[str]], int]) -> None:
    """One round's Tune experiment, restored when an earlier driver started it; its results into the plan."""
    plan = state.confirm
    labels = {c["key"]: c["label"] for c in plan.candidates}
    by_key = {c["key"]: c for c in plan.candidates}
    path = spec.experiment_dir / batch.name
    configs = [{**by_key[key]["config"], CONFIRM_KEY: key, SEED_KEY: seed} for key, seed in batch.runs]
    tuner = trust.tuner(path, trainable, RESTART_ADVICE, lambda: tune.Tuner(
        trainable, tune_config=tune.TuneConfig(search_alg=FixedConfigs(configs), num_samples=len(configs),
                                               max_concurrent_trials=spec.budget.max_concurrent_trials,
                                               reuse_actors=reuse_workers(spec)),
        run_config=make_run_config(batch.name, partial(confirm_description, labels), spec.experiment_dir,
                                   batch_progress(spec, plan, batch))))
    grid = fit(tuner, path)
    if grid.num_terminated + grid.num_errors < len(batch.runs):
        raise Interrupted(batch.name)
    drop_orphans(CONFIRM_ROLE, trial_ids(grid))
    for result in grid:
        config = result.config or {}
        plan.record(config[CONFIRM_KEY], int(config[SEED_KEY]), run_record(result))
        if int(config[SEED_KEY]) == plan.seeds[0] and trains_teacher(config):
            keep_teacher(result, teachers_folder(spec) / f"{config[CONFIRM_KEY]}.pth")
    batch.done = True
    state.write(spec.experiment_dir)
