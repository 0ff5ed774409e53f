"""A name -> entry registry with errors that list the valid names (timm's `register_model` idiom).

One mechanism for both axes: the model registry (bench.models.MODELS, a family's entries) and the
task registry (tasks.base.TASKS, task classes), each with its own `register_*` decorator.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, Iterable, Iterator, Optional, TypeVar

from bench.core.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """`merge(name, registered, new)`, when given, combines a second registration of a name with the
    first (a model family registers its image and its text entries apart); without it a name
    registered twice is an error."""

    def __init__(self, kind: str, merge: Optional[Callable[[str, T, T], T]] = None):
        self.kind = kind  # "task", "model": used in error sentences
        self._merge = merge
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            if self._merge is None:
                raise ValueError(f"{self.kind} {name!r} is registered twice.")
            entry = self._merge(name, self._entries[name], entry)
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form: `@REGISTRY.register("name")` adds the decorated object under `name`."""

        def add(entry: T) -> T:
            self.add(name, entry)
            return entry

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"Unknown {self.kind} {name!r}; valid {self.kind}s are: {', '.join(self.names())}."
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def import_modules(package: str, path: Iterable[str]) -> None:
    """Import every module of a package (its `__name__` and `__path__`): a module registers what it
    defines as it is imported, so no list of modules is kept by hand. One imported before is not
    imported again."""
    for module in pkgutil.iter_modules(path, f"{package}."):
        importlib.import_module(module.name)
