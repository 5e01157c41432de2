"""Which configuration a search answers, and which others its own noise cannot tell from it.

One answer for the search's summary, its confirmation and `search.replay`, so the replay measures the rule a
search applies. A pick rule is registered by name (`--pick`):
- `last`: trials that ran to `max_t` by their final validation value (a configuration run with several seeds by
  its mean over them), then the trials stopped early by their last value;
- `model`: the same trials by the posterior mean of a Gaussian process fitted to their final values
  (scikit-learn: Matern kernel plus a white-noise term), which pools neighbours instead of trusting one noisy value.
Ties are part of the answer: the configurations the search's own seed noise cannot tell from the best, by the
multiple-comparison-with-the-best rule of `search.ties` (it keeps the true best at least 95% of the time). With one
seed per configuration the search cannot estimate that noise. The Gaussian process's noise term is no substitute:
fitted to one seed per configuration of the recorded grids it ranged from 0.00 to 19.6 points against seed sds of
0.85 to 2.96 (`python -m bench.defaults_replay`). The confirmation stage, which re-trains the top configurations
over paired seeds, then decides the ties.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from distill.registry import Registry
from search import outcomes, ties
from search.options import METRIC
from trainables.overrides import SEED_KEY

MIN_MODELLED = 4  # finished configurations a Gaussian process needs before it is fitted


@dataclass(frozen=True)
class Answer:
    """The search's answer: trials best first, the configurations tied with the best, and the comparison that tied
    them (its noise; the configurations it left out)."""

    ranked: list[dict]  # usable trials, best first; a judged finished trial before an unstable or a stopped one
    tied: list[dict]  # one trial per configuration the seeds cannot tell from the best, best first; the best alone
    ties: ties.Ties  # the rule's comparison of the finished configurations
    rule: str  # the rule that ranked (`model` falls back to `last` when it cannot fit)

    @property
    def noise(self) -> ties.Noise | None:
        """None: no configuration finished with more than one seed, so no noise was measured."""
        return self.ties.noise

    @property
    def best(self) -> dict | None:
        return self.ranked[0] if self.ranked else None


def config_key(config: dict) -> str:
    """A configuration without its seed: the seeds of one grid point are one configuration."""
    return json.dumps({k: v for k, v in config.items() if k != SEED_KEY}, sort_keys=True, default=str)


def usable(rows: Sequence[dict]) -> list[dict]:
    return [r for r in rows if r["state"] in outcomes.USABLE and outcomes.is_number(r["metrics"].get(METRIC))]


def finished(rows: Sequence[dict]) -> list[dict]:
    """Trials whose student ran every epoch: the only values comparable with each other."""
    return [r for r in usable(rows) if r["state"] == outcomes.COMPLETE]


def by_config(rows: Sequence[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(config_key(row["config"]), []).append(row)
    return grouped


def seed_of(row: dict) -> object:
    """The seed a trial ran (its configuration's, from `--grid-seeds`), else the trial itself: never paired."""
    return row["config"].get(SEED_KEY, ("trial", row.get("trial", id(row))))


def compared(rows: Sequence[dict]) -> ties.Ties:
    """The tie rule over finished trials: each configuration's final values by seed; a configuration with a trial
    whose teacher collapsed is kept out of the pooled noise."""
    runs: dict[str, dict] = {}
    collapsed = {}
    for row in rows:
        key = config_key(row["config"])
        runs.setdefault(key, {})[seed_of(row)] = row["metrics"][METRIC]
        if row.get("outcome") == outcomes.COLLAPSED:
            collapsed[key] = "its teacher collapsed"
    return ties.mcb(runs, collapsed=collapsed)


def seed_noise(rows: Sequence[dict]) -> ties.Noise | None:
    """The seed noise the tie rule measures from finished trials, when configurations were run with several seeds."""
    return compared(rows).noise


def features(rows: Sequence[dict], params: Sequence[str], log_params: frozenset[str]) -> np.ndarray:
    """The searched parameters of each trial as model inputs: numbers on their own scale (log where the search
    samples on one; 0 a decade below the smallest positive value) scaled to [0, 1], categories one-hot."""
    columns = []
    for name in params:
        values = [r["config"].get(name) for r in rows]
        if all(outcomes.is_number(v) for v in values):
            numbers = np.array(values, dtype=float)
            if name in log_params and (numbers > 0).any():
                numbers = np.log10(np.where(numbers > 0, numbers, numbers[numbers > 0].min() / 10))
            span = numbers.max() - numbers.min()
            columns.append((numbers - numbers.min()) / span if span > 0 else np.zeros_like(numbers))
        else:
            for level in sorted({str(v) for v in values}):
                columns.append(np.array([float(str(v) == level) for v in values]))
    return np.stack(columns, axis=1) if columns else np.zeros((len(rows), 1))


def gaussian_process(rows: Sequence[dict], params: Sequence[str], log_params: frozenset[str], seed: int):
    """A GP with a noise term fitted to the rows' final values (normalised), and the rows' model inputs."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    x = features(rows, params, log_params)
    y = np.array([r["metrics"][METRIC] for r in rows], dtype=float)
    kernel = (ConstantKernel(1.0, (1e-3, 1e3)) * Matern(np.full(x.shape[1], 0.5), (0.05, 20.0), nu=2.5)
              + WhiteKernel(0.1, (1e-6, 10.0)))
    model = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=1, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model, x


Scorer = Callable[[list[dict], Sequence[str], frozenset[str], int], dict[str, float]]
PICKS: Registry[Scorer] = Registry("pick rule")


@PICKS.register("last")
def last_value(rows: list[dict], params: Sequence[str], log_params: frozenset[str], seed: int) -> dict[str, float]:
    """Each finished configuration's final value (its mean over seeds)."""
    return {key: float(np.mean([r["metrics"][METRIC] for r in group])) for key, group in by_config(rows).items()}


@PICKS.register("model")
def modelled_value(rows: list[dict], params: Sequence[str], log_params: frozenset[str], seed: int) -> dict[str, float]:
    """Each finished configuration's posterior mean under a Gaussian process; the final values themselves when too
    few configurations finished to fit one."""
    scores = last_value(rows, params, log_params, seed)
    if len(scores) < MIN_MODELLED:
        return scores
    summed: dict[str, list[float]] = {}
    model, x = gaussian_process(rows, params, log_params, seed)
    for row, mean in zip(rows, model.predict(x)):
        summed.setdefault(config_key(row["config"]), []).append(float(mean))
    return {key: float(np.mean(v)) for key, v in summed.items()}


def pick(rows: Sequence[dict], params: Sequence[str], log_params: frozenset[str] = frozenset(), rule: str = "last",
         seed: int = 0) -> Answer:
    """The search's answer from its trials (`rows`: {config, state, metrics}, as `report.trial_rows` gives them)."""
    scorer = PICKS.get(rule)
    done = finished(rows)
    params = [p for p in params if p != SEED_KEY]
    scores = scorer(done, params, log_params, seed) if done else {}
    used = rule if len(scores) >= MIN_MODELLED else "last"  # `model` falls back below MIN_MODELLED
    comparison = compared(done)
    final = {id(r) for r in done}
    stopped = sorted((r for r in usable(rows) if id(r) not in final), key=lambda r: -r["metrics"][METRIC])
    ordered = sorted(done, key=lambda r: (config_key(r["config"]) in comparison.unstable,
                                          -scores[config_key(r["config"])], -r["metrics"][METRIC]))
    return Answer(ordered + stopped, tied_configs(ordered, comparison), comparison, used)


def tied_configs(ordered: list[dict], comparison: ties.Ties) -> list[dict]:
    """One trial per configuration: the best by the pick rule, then the others the tie rule keeps, best first."""
    if not ordered:
        return []
    kept = set(comparison.kept)
    best = config_key(ordered[0]["config"])
    seen, tied = set(), []
    for row in ordered:
        key = config_key(row["config"])
        if key not in seen and (key == best or key in kept):
            tied.append(row)
        seen.add(key)
    return tied
