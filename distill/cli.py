"""Shared command-line plumbing: a user mistake becomes one `error:` line and exit status 2."""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path

from distill.errors import UserError

USER_ERROR_EXIT = 2


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help shows every option's default: the help text's own words where it states one, else `(default: X)`.
    Descriptions keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or "default" in text.lower() or action.default in (None, False, [])
                or action.default is argparse.SUPPRESS):
            return text
        value = " ".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else "%(default)s"
        return f"{text} (default: {value})" if text else f"default: {value}"


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes (unknown option, bad value) are one `error:` line, without the usage block, and
    whose --help shows every default."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:
        raise UserError(f"{self.prog}: {message} (see --help)")

    def parse_known_args(self, args=None, namespace=None):
        """argparse's parse, then one check for every number typed: `float` takes 'inf', 'nan' and '1e999', which
        no option of kdtune means, so a non-finite value is refused here, naming its option."""
        parsed, extras = super().parse_known_args(args, namespace)
        for action in self._actions:
            value = getattr(parsed, action.dest, None)
            for number in value if isinstance(value, (list, tuple)) else (value,):
                if isinstance(number, float) and not math.isfinite(number):
                    self.error(f"{'/'.join(action.option_strings) or action.dest} {number}: not a finite number")
        return parsed, extras


def clock(seconds: float) -> str:
    """A duration as a person reads it on a progress line: 0:42, 12:05, 1:02:03."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run `main`, turning UserError into a single stderr line, a closed pipe into a quiet stop and
    Ctrl-C into exit 130."""
    try:
        return main(argv) or 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return USER_ERROR_EXIT
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly instead of failing at interpreter exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def check_folder(path: Path, flag: str) -> None:
    """`path` is a folder, or one that can be created: its nearest existing ancestor is a writable folder."""
    existing = path = Path(path).expanduser().absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == path else f"cannot be created: {existing} is a file"
        raise UserError(f"{flag} {path} {where}, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path} cannot be {'written' if existing == path else 'created'}: "
                        f"{existing} is not writable")


def check_output_file(path: str | None, flag: str) -> None:
    """An output file's folder exists (or can be made) and takes files: checked before the work, not after it."""
    if path is None:
        return
    if Path(path).expanduser().is_dir():
        raise UserError(f"{flag} {path} is a folder: name the file to write")
    check_folder(Path(path).expanduser().absolute().parent, f"{flag} {path}: its folder")


def write_output(path: str, text: str) -> None:
    """Write an output file checked by `check_output_file`, making its folder first; whole or not at all."""
    from distill.models.checkpoints import atomic_write

    atomic_write(text.encode(), Path(path).expanduser())


def make_writable_folder(path: Path, flag: str) -> None:
    """Create `path` and write a file in it, so a folder that cannot take the results fails now, in one line, not
    after the work (a read-only mount, a full disk, permissions `check_folder` cannot see)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".kdtune-write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UserError(f"{flag} {path} cannot be written: {err.strerror or err}") from None


def add_compile_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--compile [MODE]`: the training step under torch.compile; bare, the whole step as CUDA graphs on CUDA."""
    from distill.config import COMPILE_MODES, GRAPHED, RuntimeConfig

    parser.add_argument("--compile", nargs="?", const=GRAPHED, default=RuntimeConfig.compile, choices=COMPILE_MODES,
                        metavar="MODE", help=f"torch.compile the training step (forward, backward, optimiser step): "
                        f"{', '.join(COMPILE_MODES)}; bare --compile means {GRAPHED}, which replays each part of the "
                        f"step as a CUDA graph on CUDA (on the CPU it compiles without graphs). Default: "
                        f"{RuntimeConfig.compile}")


def add_distiller_options(parser: argparse.ArgumentParser, default: Sequence[str]) -> None:
    """`--distiller NAME...`, `--ce-weight`, and `--<distiller>-<field>` for every field of every registered
    distiller's config (help and defaults from the config itself), so a new distiller needs no CLI code."""
    from distill.losses import DISTILLERS

    group = parser.add_argument_group("distillation (what the student learns from)")
    group.add_argument("--distiller", nargs="+", default=list(default), metavar="NAME",
                       help=f"one or more of {', '.join(DISTILLERS.names())}, combined (e.g. kd crd), or none: "
                       f"cross-entropy only (default: {' '.join(default)})")
    group.add_argument("--ce-weight", type=float, help="weight of the student's CE on labels (default: what the "
                       "chosen methods publish: 0.1 with KD among them, else 1)")
    add_settings_options(parser, DISTILLERS)


def flag(name: str, field: str) -> str:
    """`--<name>-<field>` with dashes: the option of one field of a registered setting (`--label-smoothing-eps`)."""
    return f"--{name.replace('_', '-')}-{field.replace('_', '-')}"


def add_settings_options(parser: argparse.ArgumentParser, registry) -> None:
    """`--<name>-<field>` for every field of every config in `registry` (distillers, teacher objectives), its help
    and default read from the config, stored under `<name>.<field>` (None when not given)."""
    for name in registry.names():
        config = registry.get(name).Config
        types = typing.get_type_hints(config)
        fields = dataclasses.fields(config)
        if not fields:
            continue
        options = parser.add_argument_group(f"{name} settings ({registry.get(name).__name__})")
        for field in fields:
            many = typing.get_origin(types[field.name]) is tuple
            shown = " ".join(field.default) if many else field.default
            optional = type(None) in typing.get_args(types[field.name])
            kind = str if many or optional else types[field.name]
            options.add_argument(flag(name, field.name), dest=f"{name}.{field.name}", type=kind,
                                 nargs="*" if many else None, metavar=field.name.upper(), default=None,  # not given
                                 help=f"{field.metadata.get('help', '')} (default: {shown})")


def teacher_objective(args: argparse.Namespace):
    """The config of `--objective` with its `--<objective>-<field>` values; a value for another objective is a
    UserError, not silently ignored."""
    from distill.settings import distiller_values
    from distill.teachers import TEACHER_OBJECTIVES

    given = distiller_values(vars(args))
    for name, values in given.items():
        if name != args.objective and name in TEACHER_OBJECTIVES.names():
            flags = ", ".join(flag(name, field) for field in values)
            raise UserError(f"{flags} set the {name} objective, but --objective is {args.objective}")
    config = TEACHER_OBJECTIVES.get(args.objective).Config().with_values(given.get(args.objective, {}))
    config.check()
    return config


def distiller_configs(args: argparse.Namespace, teacher: str, student: str) -> dict:
    """The configs `--distiller` names, each at what its reference code publishes for the `teacher` → `student`
    pair with the `--<distiller>-<field>` values given; a setting for a distiller that is not chosen is a
    UserError, not silently ignored."""
    from distill.losses.published import published_configs
    from distill.settings import NO_DISTILLER, configure, distiller_values

    names = [] if args.distiller == [NO_DISTILLER] else list(args.distiller)
    for name, values in distiller_values(vars(args)).items():
        if name not in names:
            flags = ", ".join(flag(name, field) for field in values)
            raise UserError(f"{flags} set {name}, which is not among --distiller {' '.join(args.distiller)}")
    return configure(names, vars(args), published_configs(names, teacher, student))
