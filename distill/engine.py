"""The training loop every run uses: epochs of an Objective, one result per epoch, exact resume.

`Trainer.epochs()` yields an `EpochResult` after each epoch (train loss terms, validation accuracy
and CMI, throughput), so a caller (the CLI, a Ray Tune trainable) reports it however it likes.
`state_dict()` holds everything needed to continue bit-for-bit: trained weights, critics,
optimiser, scheduler, epoch, best accuracy and every random state.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from distill import distributed
from distill.config import OptimConfig, RuntimeConfig
from distill.data import Loader
from distill.losses.cmi import conditional_mutual_information
from distill.metrics import accuracy, per_class_accuracy, probability_scores
from distill.objectives import Batch, Objective
from distill.step import TrainStep

FINITE_CHECK_EVERY = 25  # steps between host syncs for the NaN/inf check on accelerators


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run cannot continue (e.g. too large a lambda or lr)."""


@dataclass
class EpochResult:
    """What one epoch produced; `metrics()` flattens it for loggers."""

    epoch: int  # 1-based, the number of epochs completed
    epochs: int
    train_terms: dict[str, float]
    train_loss: float
    val_acc: float
    val_acc_max: float  # the highest val_acc of any epoch so far
    val_cmi: float
    lr: float
    images_per_sec: float
    seconds: float
    val_scores: dict[str, float] = field(default_factory=dict)  # nll, ece, brier, entropy (kl_bayes ...)
    gpu_memory_gib: float | None = None  # the epoch's peak GPU memory held by tensors; None off CUDA
    validated: bool = True  # False for a run that keeps no validation images: its val_* are NaN by construction

    def metrics(self) -> dict[str, float]:
        """Flat numbers: `train_loss` and each term summed into it as `train_loss_<term>`, validation when the run
        validates (with its probability scores as `val_<score>`), speed and (on CUDA) peak GPU memory."""
        flat = {k: v for k, v in asdict(self).items() if k not in ("train_terms", "val_scores", "validated")
                and v is not None and (self.validated or not k.startswith("val_"))}
        flat.update({f"train_loss_{name}": value for name, value in self.train_terms.items()})
        flat.update({f"val_{name}": value for name, value in self.val_scores.items()})
        return flat


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_for(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A context factory: bf16 autocast on CUDA under 'auto'/'bf16', nothing on fp32 or CPU 'auto'."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def uses_channels_last(runtime: RuntimeConfig, device: torch.device) -> bool:
    """Channels-last nets and batches: on by default on CUDA, where convolutions run fastest so."""
    return runtime.channels_last if runtime.channels_last is not None else device.type == "cuda"


def batch_dtype(runtime: RuntimeConfig, device: torch.device) -> torch.dtype:
    """The dtype the loaders write batches in: bfloat16 under bf16 autocast (the nets' first convolution
    consumes it as is, and the batch costs half the memory traffic), float32 otherwise."""
    return torch.float32 if autocast_for(device, runtime.precision) is contextlib.nullcontext else torch.bfloat16


def peak_memory_gib(device: torch.device) -> float | None:
    """GiB of GPU memory tensors held at most since the last reset of the peak; None off CUDA."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed torch (CPU and CUDA); optionally insist on deterministic kernels."""
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


@torch.no_grad()
def predict(model: nn.Module, loader: Loader, autocast: Callable) -> tuple[torch.Tensor, torch.Tensor]:
    """(float32 logits, labels) of `model` over every batch of `loader`, in eval mode."""
    was_training = model.training
    model.eval()
    outputs, labels = [], []
    for images, targets, *_ in loader:
        with autocast():
            outputs.append(model(images).float())
        labels.append(targets)
    model.train(was_training)
    return torch.cat(outputs), torch.cat(labels)


def evaluate_model(
    model: nn.Module, loader: Loader, autocast: Callable, prefix: str, classes: tuple[int, ...] = ()
) -> dict[str, float]:
    """`{prefix}_acc`, `{prefix}_cmi`, the probability scores (`{prefix}_nll`, `_ece`, `_brier`, `_entropy`,
    and `_kl_bayes`, `_bayes_acc` where the true posterior is known) and the per-class accuracy of `classes`."""
    logits, labels = predict(model, loader, autocast)
    metrics = {f"{prefix}_acc": accuracy(logits, labels),
               f"{prefix}_cmi": conditional_mutual_information(logits, labels).item()}
    metrics.update({f"{prefix}_{k}": v for k, v in probability_scores(logits, labels, loader.posteriors).items()})
    for cls, acc in per_class_accuracy(logits, labels, classes).items():
        metrics[f"{prefix}_acc_class_{cls}"] = acc
    return metrics


def build_scheduler(optimizer: torch.optim.Optimizer, optim: OptimConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch step decay at the milestones, or cosine annealing to zero over the run."""
    if optim.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=optim.epochs)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(optim.milestones), gamma=optim.lr_decay)


class Trainer:
    """Runs `optim.epochs` epochs of `objective` on `train`, validating `objective.model` on `val`."""

    def __init__(
        self,
        objective: Objective,
        train: Loader,
        val: Loader,
        optim: OptimConfig,
        runtime: RuntimeConfig,
        device: torch.device,
        on_step: Callable[[int, int], None] | None = None,
    ) -> None:
        self.objective = objective.to(device)
        self.model = objective.model
        self.train_loader, self.val_loader = train, val
        self.optim_config = optim
        self.device = device
        self.autocast = autocast_for(device, runtime.precision)
        self.on_step = on_step
        if uses_channels_last(runtime, device):
            self.objective.to(memory_format=torch.channels_last)
        groups = [{"params": g["params"], "lr": optim.lr * g["lr_mult"]} for g in objective.param_groups()]
        self.optimizer = torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
        self.scheduler = build_scheduler(self.optimizer, optim)  # before the step: it wraps optimizer.step
        # In a data-parallel run the step drives the objective under DDP, which averages the gradients.
        self.step = TrainStep(distributed.data_parallel(self.objective, device), self.optimizer, self.autocast,
                              runtime.compile)
        self.epoch = 0
        self.best_val_acc = 0.0
        self.history: list[dict[str, float]] = []

    @property
    def done(self) -> bool:
        return self.epoch >= self.optim_config.epochs

    def epochs(self) -> Iterator[EpochResult]:
        """Train the remaining epochs, yielding each one's result as soon as it is validated."""
        while not self.done:
            yield self.train_epoch()

    def train_epoch(self) -> EpochResult:
        self.objective.train()
        lr = float(self.optimizer.param_groups[0]["lr"])
        epoch = torch.tensor(float(self.epoch + 1), device=self.device)  # a tensor: no re-capture per epoch
        sums = torch.zeros((), device=self.device)  # per term, the summed loss last; a NaN/inf loss stays in it
        check_every = 1 if self.device.type == "cpu" else FINITE_CHECK_EVERY
        steps, images_seen = len(self.train_loader), 0
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        for step, (images, labels, *indices) in enumerate(self.train_loader, 1):
            values = self.step(Batch(images, labels, epoch, indices[0] if indices else None))
            sums = torch.add(sums, values, alpha=len(labels))
            images_seen += len(labels)
            if step % check_every == 0 or step == steps:
                self._check_finite(sums, step)
            if self.on_step is not None:
                self.on_step(step, steps)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        self.scheduler.step()
        self.epoch += 1
        sums, images_seen = self._across_workers(sums, images_seen)
        distributed.share_buffers(self.objective)
        means = dict(zip(self.step.names, (sums / max(images_seen, 1)).tolist())) if images_seen else {}
        val_acc, val_cmi, val_scores = self._validate()
        result = EpochResult(
            epoch=self.epoch, epochs=self.optim_config.epochs, train_terms={k: v for k, v in means.items() if k != "loss"},
            train_loss=means.get("loss", math.nan), val_acc=val_acc, val_acc_max=self.best_val_acc,
            val_cmi=val_cmi, lr=lr, images_per_sec=images_seen / seconds if seconds else math.nan, seconds=seconds,
            val_scores=val_scores, gpu_memory_gib=peak_memory_gib(self.device),
            validated=self.val_loader.num_images > 0,
        )
        self.history.append(result.metrics())
        return result

    def _validate(self) -> tuple[float, float, dict[str, float]]:
        """Validation accuracy, CMI and probability scores, tracking the best accuracy; NaN (and no scores)
        for a final run that kept no validation images (it trains on train + validation once tuning is over)."""
        if self.val_loader.num_images == 0:
            self.best_val_acc = math.nan
            return math.nan, math.nan, {}
        scores = {k.removeprefix("val_"): v for k, v in self.evaluate(self.val_loader, "val").items()}
        val_acc, val_cmi = scores.pop("acc"), scores.pop("cmi")
        self.best_val_acc = max(self.best_val_acc, val_acc)
        return val_acc, val_cmi, scores

    def _across_workers(self, sums: torch.Tensor, images: int) -> tuple[torch.Tensor, int]:
        """The loss sums and image count of every data-parallel worker together (these alone in one process)."""
        if not distributed.is_distributed():
            return sums, images
        together = torch.cat([sums.reshape(-1), torch.tensor([float(images)], device=sums.device)])
        distributed.sum_across_workers(together)
        return together[:-1].reshape(sums.shape), int(together[-1].item())

    def _check_finite(self, sums: torch.Tensor, step: int) -> None:
        """One host sync: a NaN or inf loss in any step so far has made its running sum non-finite. Data-parallel
        workers check their sums together, so all of them stop at the same step rather than one waiting forever."""
        sums, _ = self._across_workers(sums, 0)
        if not bool(torch.isfinite(sums).all()):
            shown = ", ".join(f"{name} sum={value:.4g}" for name, value in zip(self.step.names, sums.tolist()))
            raise NonFiniteLossError(
                f"loss is not finite in epoch {self.epoch + 1}, by step {step} ({shown}); "
                "lower the learning rate or the loss weights"
            )

    def evaluate(self, loader: Loader, prefix: str, classes: tuple[int, ...] = ()) -> dict[str, float]:
        """Accuracy and CMI of the trained net on `loader` (e.g. the test set, once, for the report)."""
        return evaluate_model(self.model, loader, self.autocast, prefix, classes)

    def state_dict(self) -> dict:
        """Everything a resumed run needs (frozen teachers excluded: they reload from their own file)."""
        return {
            "objective": self.objective.trainable_state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "best_val_acc": self.best_val_acc,
            "history": self.history,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "loader": self.train_loader.state_dict(),
            },
        }

    def load_state_dict(self, state: dict) -> None:
        self.objective.load_trainable_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step.optimizer_restored()
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = state["epoch"]
        self.best_val_acc = state["best_val_acc"]
        self.history = list(state["history"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.train_loader.load_state_dict(state["rng"]["loader"])
