"""Reading and writing weights in the format KD papers share: `{'model': state_dict, ...}` .pth files.

The one writer (`weights_bytes`, `save_weights`) and the one reader (`read_state_dict`, `load_weights`) of
that format, for files on disk and for the bytes a Ray checkpoint or the object store carries.
"""
from __future__ import annotations

import io
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from distill.errors import UserError

WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")


Source = str | os.PathLike | bytes  # a .pth file, or its bytes


def load_torch_file(source: Source, what: str = "checkpoint") -> object:
    """The tensors and plain data in a torch.save file (a path or its bytes), loaded weights-only: a file that asks
    for any other object, or a damaged one, is one UserError naming it (`what` says what it should have been)."""
    if isinstance(source, bytes):
        path, named, head, stream = f"the {what}", f"the {what}", source[:4], io.BytesIO(source)
    else:
        path = Path(source)
        named = f"{what} {path}"
        if not path.is_file():
            raise UserError(f"{what} not found: {path}")
        with path.open("rb") as handle:
            head, stream = handle.read(4), path
    if not looks_like_torch_file(head):
        raise UserError(f"{path} is not a PyTorch {what} (neither torch.save's zip archive nor a pickle)")
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols would add lines to a one-line error
            warnings.simplefilter("ignore")
            return torch.load(stream, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"cannot read {named}: it holds objects other than tensors and plain data, which "
                        "are not loaded (weights only); nothing in it was run. Save weights as {'model': model.state_dict()}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, IndexError, KeyError, AttributeError,
            TypeError, OSError, MemoryError) as err:  # a truncated or corrupt file fails in many ways inside the unpickler
        first = str(err).strip().splitlines()[0].split(". ")[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot read {named}: it is truncated or corrupt ({first})") from None


def read_state_dict(source: Source) -> dict[str, torch.Tensor]:
    """The state dict in `source` (a path or a file's bytes), wrapped (RepDistiller's `{'model': ...}`) or bare,
    loaded weights-only."""
    blob = load_torch_file(source)
    path = "the checkpoint" if isinstance(source, bytes) else Path(source)
    if isinstance(blob, dict):
        for key in WRAPPER_KEYS:
            if isinstance(blob.get(key), dict):
                blob = blob[key]
                break
    if not isinstance(blob, dict) or not blob or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise UserError(f"{path} holds no state dict (expected {{'model': state_dict}} or a bare state dict)")
    # Checkpoints saved from nn.DataParallel prefix every name with 'module.'.
    if all(k.startswith("module.") for k in blob):
        blob = {k.removeprefix("module."): v for k, v in blob.items()}
    return blob


def looks_like_torch_file(head: bytes) -> bool:
    """Whether a file's first bytes are torch.save's zip archive (since 1.6) or, in the legacy format, a pickle
    (protocol >= 2: 0x80)."""
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def describe_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> str:
    """A one-line summary of how `state` fails to fit `model`; empty when it fits exactly."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    if shapes:
        k = shapes[0]
        parts.append(
            f"{len(shapes)} shape mismatches (e.g. {k}: checkpoint {tuple(state[k].shape)}, "
            f"model {tuple(expected[k].shape)})"
        )
    return "; ".join(parts)


def guess_architecture(state: dict[str, torch.Tensor]) -> str | None:
    """The registered architecture whose names and shapes match `state` (at its own class count)."""
    from distill.models import create, names

    num_classes = _num_classes(state)
    with torch.device("meta"):
        for name in names():
            if not describe_mismatch(create(name, num_classes), state):
                return name
    return None


def checkpoint_classes(source: Source) -> int:
    """The number of classes a checkpoint was trained for: what the file records (`num_classes`, written by this
    project's runs), else the width of its classifier."""
    blob = load_torch_file(source)
    recorded = blob.get("num_classes") if isinstance(blob, dict) else None
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded > 0:
        return recorded
    return _num_classes(read_state_dict(source))


def _num_classes(state: dict[str, torch.Tensor]) -> int:
    """Output width of the last 2-D weight, i.e. the classifier's number of classes."""
    matrices = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    return matrices[-1].shape[0] if matrices else 1


def load_weights(model: nn.Module, source: Source, name: str | None = None) -> nn.Module:
    """Load `source` (a path or a file's bytes) into `model` strictly; a wrong architecture is one UserError
    line naming the likely one."""
    state = read_state_dict(source)
    problem = describe_mismatch(model, state)
    if problem:
        label = name or type(model).__name__
        guess = guess_architecture(state)
        hint = f"; it looks like a {guess} checkpoint" if guess and guess != name else ""
        where = "" if isinstance(source, bytes) else f" {source}"
        raise UserError(f"checkpoint{where} does not fit {label}: {problem}{hint}")
    model.load_state_dict(state, strict=True)
    return model


def atomic_save(obj: object, path: str | os.PathLike) -> Path:
    """torch.save to a temporary name, then rename: a crash never leaves half a file."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(buffer.getvalue(), path)


def atomic_write(payload: bytes, path: str | os.PathLike) -> Path:
    """`payload` written under a temporary name, then renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)
    return path


def save_weights(model: nn.Module, path: str | os.PathLike, **extra: object) -> Path:
    """Write `{'model': state_dict, **extra}` atomically, the layout RepDistiller-style code loads."""
    return atomic_save({"model": model.state_dict(), **extra}, path)


def weights_bytes(model: nn.Module, **extra: object) -> bytes:
    """The bytes `save_weights` would write (what a Ray checkpoint, the object store and MLflow carry)."""
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), **extra}, buffer)
    return buffer.getvalue()
