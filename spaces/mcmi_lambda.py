"""The lambda search: the CMI weight of MCMI fine-tuning, and optionally its learning rate."""
from __future__ import annotations

from distill.config import MCMIConfig
from spaces.ranges import Range

PAPER_LAMBDA = MCMIConfig().lam  # the MCMI paper's CIFAR-100 choice, in this project's sign (> 0 maximises CMI)
DEFAULT_LAMBDA_RANGE = Range(0.05, 1.0, log=True)  # about the range the paper swept


def lambda_space(trial, lam: Range = DEFAULT_LAMBDA_RANGE, lr: Range | None = None) -> None:
    """lam log-uniform over `lam`; the fine-tune lr over `lr` when given."""
    lam.suggest(trial, "lam")
    if lr is not None:
        lr.suggest(trial, "mcmi_lr")


def known_good(lr: float | None = None) -> list[dict]:
    """The paper's point first, so a small search always measures it."""
    point = {"lam": PAPER_LAMBDA}
    if lr is not None:
        point["mcmi_lr"] = lr
    return [point]
