"""What makes one search different from another; everything else is shared by the `search` stages."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

from distill.data import DataSplits
from search.options import Jobs


@dataclass(frozen=True)
class Baseline:
    """A configuration every confirmation compares against: the search's answer to "better than what?"."""

    key: str  # ASCII, for metric names and tags: "control"
    label: str  # what a person reads: "λ=0 control"
    config: dict  # trial-config values the search's trainable understands
    description: str  # one sentence for the report: what it is and why it is the comparison


def fixed(*baselines: Baseline) -> Callable[[argparse.Namespace], tuple[Baseline, ...]]:
    """Baselines that do not depend on the search's options."""
    return lambda args: baselines


@dataclass(frozen=True)
class SearchDefinition:
    """A search: its options, its Optuna space and first points, its trainable, baselines and reports."""

    name: str  # module name under search/, e.g. "mcmi_lambda"
    description: str
    add_options: Callable[[argparse.ArgumentParser], None]
    space: Callable[[argparse.Namespace], Callable]  # checked ranges -> picklable define-by-run function
    points: Callable[[argparse.Namespace], list[dict]]  # known-good configs, tried first
    log_params: frozenset[str]  # sampled on a log scale (plotted so)
    trainable: Callable
    trainable_inputs: Callable[[Jobs, DataSplits, bytes], dict]  # keyword inputs for tune.with_parameters
    columns: tuple[str, ...]  # result columns of the final table
    plot_metrics: tuple[str, ...]  # rows of the parameter-vs-result figure
    baselines: Callable[[argparse.Namespace], tuple[Baseline, ...]]  # per the options (the pair); first: primary
    label_names: dict[str, str] = field(default_factory=dict)  # config key -> symbol in labels; others unnamed
    teacher_objective: str | None = None  # each trial first trains a teacher with it; None: no teacher stage
    distillers: tuple[str, ...] = ("kd",)  # the student's distillers unless --distiller names others
    searched: tuple[str, ...] = ()  # distillers whose settings the space samples: --distiller must keep them
    command: str = ""  # how a user starts it, e.g. "search.distiller --method dkd" (default: search.NAME)

    @property
    def teacher_stage(self) -> bool:
        """Whether trials train their own teacher (kept with the best trial and the confirmed ones)."""
        return self.teacher_objective is not None

    @property
    def invocation(self) -> str:
        return f"python -m {self.command or 'search.' + self.name}"
