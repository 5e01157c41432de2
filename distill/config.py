"""Typed configuration with every default in one place; command lines and trainables override fields."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

from distill.losses import KDConfig, published_ce_weight
from distill.losses.base import DistillerConfig
from distill.models.registry import IMAGENET_NET_PREFIX
from distill.teachers import MLLConfig, TeacherObjectiveConfig

FewShotMode = Literal["stratified", "first"]


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, where its files are, and how train is split for honest tuning."""

    dataset: str = "cifar100"
    data_dir: str = "./data"
    download: bool = False
    verify_md5: bool = True
    val_size: int | None = None  # None: the dataset's default (5,000 for CIFAR)
    split_seed: int = 0
    few_shot_fraction: float = 1.0  # fraction of train the student sees
    few_shot_mode: FewShotMode = "stratified"  # "first": the MCMI paper's first-N protocol
    zero_shot_classes: tuple[int, ...] = field(default_factory=tuple)  # removed from the student's data


Schedule = Literal["step", "cosine"]
Precision = Literal["auto", "fp32", "bf16"]
CompileMode = Literal["off", "default", "reduce-overhead", "max-autotune"]  # "off": eager; else torch.compile's mode
COMPILE_MODES: tuple[str, ...] = get_args(CompileMode)
GRAPHED: CompileMode = "reduce-overhead"  # a bare --compile: the whole training step as CUDA graphs on CUDA

# Nets the published recipes train at a fifth (MLL) or a tenth (MCMI) of the usual learning rate.
LIGHT_NETS = frozenset({"MobileNetV2", "ShuffleV1", "ShuffleV2"})


@dataclass(frozen=True)
class OptimConfig:
    """SGD with momentum and a per-epoch learning-rate schedule."""

    epochs: int = 240
    lr: float = 0.05
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Schedule = "step"
    milestones: tuple[int, ...] = (150, 180, 210)  # for "step": multiply lr by lr_decay here
    lr_decay: float = 0.1


def imagenet_recipe(batch_size: int = 256) -> OptimConfig:
    """The standard ImageNet recipe for teachers and KD students (torchvision's reference training, as CRD's and
    MIMKD's ImageNet runs use it): 100 epochs, SGD at 0.1 x batch / 256, momentum 0.9, weight decay 1e-4, the
    learning rate times 0.1 at epochs 30, 60 and 90."""
    return OptimConfig(epochs=100, lr=0.1 * batch_size / 256, batch_size=batch_size, momentum=0.9, weight_decay=1e-4,
                       schedule="step", milestones=(30, 60, 90), lr_decay=0.1)


def mll_recipe(arch: str) -> OptimConfig:
    """The standard recipe for MLL teachers and KD students: RepDistiller's CIFAR-100 one, or ImageNet's for the
    zoo's ImageNet nets."""
    if arch.startswith(IMAGENET_NET_PREFIX):
        return imagenet_recipe()
    return OptimConfig(lr=0.01 if arch in LIGHT_NETS else 0.05)


def fine_tune_recipe(arch: str) -> OptimConfig:
    """The recipe of a teacher fine-tuned from its MLL checkpoint with another objective: the MCMI paper's, 20 cosine
    epochs."""
    return OptimConfig(epochs=20, lr=0.005 if arch in LIGHT_NETS else 0.05, schedule="cosine", milestones=())


def scaled_recipe(recipe: OptimConfig, epochs: int) -> OptimConfig:
    """`recipe` shortened or stretched to `epochs`, its step milestones moved in proportion."""
    milestones = tuple(sorted({max(1, round(m * epochs / recipe.epochs)) for m in recipe.milestones}))
    return replace(recipe, epochs=epochs, milestones=tuple(m for m in milestones if m < epochs))


def overridden_recipe(recipe: OptimConfig, epochs: int | None = None, **changes: object) -> OptimConfig:
    """`recipe` scaled to `epochs` (when given) with every non-None field of `changes` replaced."""
    if epochs is not None:
        recipe = scaled_recipe(recipe, epochs)
    return replace(recipe, **{name: value for name, value in changes.items() if value is not None})


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how a run executes; none of it changes what is learned, except `seed`."""

    seed: int = 0
    device: str = "auto"  # "auto": cuda when available, else cpu
    precision: Precision = "auto"  # "auto": bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool | None = None  # None: on for CUDA
    compile: CompileMode = "off"  # the training step under torch.compile; "reduce-overhead": CUDA graphs on CUDA
    deterministic: bool = False  # torch.use_deterministic_algorithms, for bit-exact CPU reruns
    eval_batch_size: int = 512
    data_workers: int | None = None  # decoding processes of a set streamed from files; None: torch's threads, <= 8
    progress: bool = False  # per-step progress callbacks (the CLI's progress line)


@dataclass(frozen=True)
class Job:
    """What every run is: a net, the data, the recipe and where it runs; the run's own fields come after."""

    arch: str
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig | None = None  # None: mll_recipe(arch), the standard teacher and student recipe
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def recipe(self) -> OptimConfig:
        return self.optim or mll_recipe(self.arch)


@dataclass(frozen=True)
class TeacherJob(Job):
    """Train a teacher with a registered objective (`distill.teachers`): from scratch, or from the weights in
    `teacher_checkpoint` (or a net the caller passes, such as a search's cached MLL teacher). Fine-tuning is a job
    whose `optim` is `fine_tune_recipe(arch)`."""

    arch: str = "resnet32x4"
    objective: TeacherObjectiveConfig = field(default_factory=MLLConfig)  # its type names the objective
    teacher_checkpoint: str = ""  # start from these weights ("" : from scratch, unless a net is passed)


TeacherStart = Literal["mll", "scratch"]
TEACHER_STARTS: tuple[str, ...] = get_args(TeacherStart)


@dataclass(frozen=True)
class TeacherStage:
    """A teacher trained in each trial before its student: the job (objective, recipe) and where it starts: "mll"
    fine-tunes the MLL teacher the caller passes (a search's cached one), "scratch" trains a fresh net."""

    job: TeacherJob
    start: TeacherStart = "mll"


@dataclass(frozen=True)
class StudentJob(Job):
    """Distil a student from a fixed teacher with any combination of registered distillers (KD by default)."""

    arch: str = "resnet8x4"
    teacher_arch: str = "resnet32x4"
    teacher_checkpoint: str = ""
    distillers: Mapping[str, DistillerConfig] = field(default_factory=lambda: {"kd": KDConfig()})
    ce_weight: float | None = None  # the student's own CE; None: what the chosen methods publish

    def ce(self) -> float:
        """The weight of the student's cross-entropy on labels."""
        return published_ce_weight(self.distillers) if self.ce_weight is None else self.ce_weight
