"""Every categorical branch of a define-by-run space, found without sampling: what a search checks before it starts.

A trial may draw any combination of a space's categorical choices (layers, critics, sizes), each of which
can be invalid for the chosen nets. Running the space on a stand-in trial that takes each combination in
turn (depth first, so conditional parameters are met where they arise) lists them all; numeric
parameters take the low end of their range, which the range checks already passed.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

MAX_VARIANTS = 10_000  # a space with more categorical combinations than this is checked on its first ones


class BranchTrial:
    """Stands in for an Optuna trial: categorical parameters take the given choice indices (then the first)."""

    def __init__(self, path: Sequence[int]) -> None:
        self.path, self.taken, self.sizes = list(path), [], []
        self.params: dict[str, object] = {}

    def suggest_categorical(self, name: str, choices: Sequence) -> object:
        index = self.path[len(self.taken)] if len(self.taken) < len(self.path) else 0
        self.taken.append(index)
        self.sizes.append(len(choices))
        self.params[name] = choices[index]
        return choices[index]

    def suggest_float(self, name: str, low: float, high: float, **_: object) -> float:
        self.params[name] = low
        return low

    def suggest_int(self, name: str, low: int, high: int, **_: object) -> int:
        self.params[name] = low
        return low


class GivenTrial:
    """Stands in for a trial whose parameters are already chosen (a grid point): each suggestion returns the chosen
    value, so the constants the space derives from them (KD's CE weight 1 - alpha) come out as in a search."""

    def __init__(self, chosen: dict[str, object]) -> None:
        self.chosen = chosen

    def suggest_categorical(self, name: str, choices: Sequence) -> object:
        return self.chosen[name]

    def suggest_float(self, name: str, low: float, high: float, **_: object) -> float:
        return self.chosen[name]

    def suggest_int(self, name: str, low: int, high: int, **_: object) -> int:
        return self.chosen[name]


def categorical_variants(space: Callable) -> list[dict]:
    """One configuration (the parameters plus the constants the space returns) per combination of categorical
    choices the space can make."""
    found, path = [], []
    while len(found) < MAX_VARIANTS:
        trial = BranchTrial(path)
        constants = space(trial)
        found.append({**trial.params, **(constants or {})})
        path = list(trial.taken)
        while path and path[-1] + 1 >= trial.sizes[len(path) - 1]:
            path.pop()
        if not path:
            break
        path[-1] += 1
    return found
