"""Read a data pickle without running anything it holds: only plain data and numpy arrays come out.

A pickle is a program for a small stack machine whose `GLOBAL` instruction imports any callable and
`REDUCE` calls it, so `pickle.load` on a file from elsewhere runs whatever the file asks. The formats
we read (CIFAR's batches and meta) hold dicts, lists, strings, bytes, numbers and numpy arrays; the
unpickler below resolves the few globals those need from a fixed table and refuses every other one.
"""
from __future__ import annotations

import _codecs
import pickle
from pathlib import Path

import numpy as np

from distill.errors import UserError

_multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray  # numpy 2 / numpy 1
_numeric = np._core.numeric if hasattr(np, "_core") else np.core.numeric

# (module, name) as a pickle spells it -> the object it stands for. numpy 1 wrote `numpy.core`, numpy 2
# writes `numpy._core`; Python 3 pickles bytes below protocol 3 as `_codecs.encode(str, 'latin1')`.
PLAIN_DATA_GLOBALS: dict[tuple[str, str], object] = {
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _multiarray._reconstruct for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _multiarray.scalar for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _numeric._frombuffer for core in ("core", "_core")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _codecs.encode,
}


class ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle asked for a callable outside the plain-data table."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.qualified = f"{module}.{name}"


class PlainDataUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose globals come only from `PLAIN_DATA_GLOBALS`; nothing is imported on a file's say-so."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return PLAIN_DATA_GLOBALS[(module, name)]
        except KeyError:
            raise ForbiddenGlobal(module, name) from None

    def persistent_load(self, pid: object) -> object:
        raise pickle.UnpicklingError("persistent ids are not plain data")


def load_plain_pickle(path: Path, what: str, encoding: str = "latin1") -> object:
    """The plain data in the pickle at `path`, or a UserError naming the file (`what` says what it should be) and,
    for a hostile file, the global it asked for; `encoding` reads Python 2's str, as the official files need."""
    try:
        with open(path, "rb") as handle:
            return PlainDataUnpickler(handle, encoding=encoding).load()
    except ForbiddenGlobal as err:
        raise UserError(f"{path} is not {what}: it asks to call {err.qualified}, which plain data never needs; "
                        "refused, nothing in it was run") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, AttributeError, KeyError,
            MemoryError, OverflowError, RecursionError) as err:  # a damaged pickle fails in many ways
        raise UserError(f"{path} is not {what}: {str(err).strip() or type(err).__name__}") from None
