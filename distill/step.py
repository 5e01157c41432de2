"""One optimisation step (forward, summed loss, backward, optimiser step), eager or compiled with torch.compile.

At batch 64 the CIFAR nets are bound by kernel launches and Python, not arithmetic. Compiled with
`mode="reduce-overhead"` on CUDA, the forward and loss, the backward and the optimiser step each replay as a
CUDA graph, so a step costs a few graph launches instead of hundreds of kernel launches. What would force a
re-capture is kept out of the graphs' constants: the learning rate is a tensor the scheduler fills in place,
the epoch (DKD's warm-up) is a tensor input, and the training loader drops its last partial batch. Validation
runs the eager net, so its last partial batch captures nothing.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from distill.config import COMPILE_MODES, CompileMode
from distill.objectives import Batch, Objective, Terms

BACKEND = "inductor"  # torch.compile's backend; tests swap in "aot_eager", which traces the same graphs uncompiled


def compiled(function: Callable, mode: str) -> Callable:
    """`function` under torch.compile in `mode` (a mode is an inductor setting: other backends take none)."""
    if BACKEND == "inductor":
        return torch.compile(function, mode=mode)
    return torch.compile(function, backend=BACKEND)


def tensor_learning_rates(optimizer: torch.optim.Optimizer) -> None:
    """Each group's lr as a 0-d tensor on its parameters' device, so the scheduler's per-epoch changes are
    written into the tensor a compiled step reads, rather than baked into the graph as a constant."""
    for group in optimizer.param_groups:
        group["lr"] = torch.tensor(float(group["lr"]), device=group["params"][0].device)


class TrainStep:
    """Runs one step of `objective` and returns its terms' values (the summed loss last), detached, float32."""

    def __init__(self, objective: Objective, optimizer: torch.optim.Optimizer, autocast: Callable,
                 mode: CompileMode = "off") -> None:
        if mode not in COMPILE_MODES:
            raise ValueError(f"compile mode must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
        self.objective, self.optimizer, self.autocast, self.mode = objective, optimizer, autocast, mode
        self.names: list[str] = []
        self.forward: Callable[[Batch], tuple[torch.Tensor, Terms]] = self.loss
        self.update: Callable[[], object] = optimizer.step
        if mode != "off":
            # One run's graphs at a time: a process that builds run after run (a Ray actor reused across trials,
            # an MCMI stage then its student) would otherwise fill dynamo's per-function cache (8 entries) with
            # graphs of finished runs and fall back to eager once it is full.
            torch._dynamo.reset()
            tensor_learning_rates(optimizer)
            self.forward = compiled(self.loss, mode)
            self.update = compiled(optimizer.step, mode)

    def optimizer_restored(self) -> None:
        """Call after loading the optimiser's state: a compiled step needs its learning rates as tensors on the
        parameters' device again, and a checkpoint brings them back as CPU tensors (or as floats from an eager run),
        which would skip the CUDA graphs or recompile at every change of the schedule."""
        if self.mode != "off":
            tensor_learning_rates(self.optimizer)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, Terms]:
        """The objective's terms and their sum, under the run's autocast."""
        with self.autocast():
            _, terms = self.objective(batch)
        return torch.stack(list(terms.values())).sum(), terms

    def __call__(self, batch: Batch) -> torch.Tensor:
        loss, terms = self.forward(batch)
        values = torch.stack([*terms.values(), loss]).detach().float()  # read before any other graph replays
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.update()
        if not self.names:
            self.names = [*terms, "loss"]
        return values
