"""A closed numeric range a search samples from, checked before any trial starts."""
from __future__ import annotations

from dataclasses import dataclass

from distill.errors import UserError


@dataclass(frozen=True)
class Range:
    """[low, high], sampled uniformly or (with `log`) log-uniformly; whole numbers only with `integer`."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def check(self, name: str, minimum: float = 0.0, maximum: float | None = None) -> Range:
        """Self, or a UserError naming the bad bound (empty, negative, zero on a log scale, too large)."""
        if not self.low < self.high:
            raise UserError(f"{name} {self.low:g} {self.high:g} is empty: LOW must be below HIGH")
        if self.low < minimum or (self.log and self.low <= 0):
            bound = "positive (log scale)" if self.log else f">= {minimum:g}"
            raise UserError(f"{name} {self.low:g} {self.high:g}: both ends must be {bound}")
        if maximum is not None and self.high > maximum:
            raise UserError(f"{name} {self.low:g} {self.high:g}: HIGH must not exceed {maximum:g}")
        return self

    def suggest(self, trial, name: str) -> float:
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)
