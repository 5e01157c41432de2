"""Name -> factory registries, so a new model, dataset or loss is one decorated function."""
from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from distill.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """A case-sensitive mapping from names to factories with a clear error for unknown names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that adds a factory under `name`; duplicate names are a programming error."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        """The factory registered as `name`, or a UserError listing the valid choices."""
        try:
            return self._entries[name]
        except KeyError:
            raise UserError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
