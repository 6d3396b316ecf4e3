"""Name -> plugin registries for methods and datasets.

Plugins register with a decorator; the built-in plugin folders (``methods/`` and ``datasets/``, installed
as ``ssvh_bench.methods`` and ``ssvh_bench.datasets``) are imported on first use, and third-party packages
add plugins through the entry-point groups ``ssvh_bench.methods`` and ``ssvh_bench.datasets``.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable

from .errors import ConfigError, UnknownNameError

FAMILIES = ("shallow", "deep", "two_stage")


@dataclass(frozen=True)
class Entry:
    """One registered plugin."""

    name: str
    factory: Callable[..., Any]
    description: str
    family: str | None = None
    test_params: dict[str, Any] = field(default_factory=dict)

    @property
    def defaults(self) -> dict[str, Any]:
        """Constructor defaults, read from the factory's signature (sklearn-style)."""
        return signature_defaults(self.factory)

    def create(self, **params: Any) -> Any:
        unknown = set(params) - set(self.defaults)
        if unknown and not _accepts_var_kwargs(self.factory):
            raise ConfigError(
                f"{self.name} has no parameter(s) {sorted(unknown)}; known: {sorted(self.defaults)}"
            )
        return self.factory(**params)


def signature_defaults(factory: Callable[..., Any]) -> dict[str, Any]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {
        p.name: p.default
        for p in inspect.signature(target).parameters.values()
        if p.name != "self" and p.kind in named and p.default is not inspect.Parameter.empty
    }


def _accepts_var_kwargs(factory: Callable[..., Any]) -> bool:
    target = factory.__init__ if inspect.isclass(factory) else factory
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(target).parameters.values())


class Registry:
    """A registry of one kind of plugin ("method" or "dataset")."""

    def __init__(self, kind: str, builtin_package: str, entry_point_group: str) -> None:
        self.kind = kind
        self._builtin_package = builtin_package
        self._entry_point_group = entry_point_group
        self._entries: dict[str, Entry] = {}
        self._loaded = False
        self._loading = False

    def register(
        self,
        name: str,
        *,
        description: str,
        family: str | None = None,
        test_params: dict[str, Any] | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering ``factory`` under ``name``; a name registered twice raises."""
        if family is not None and family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")

        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = Entry(name, factory, description, family, dict(test_params or {}))
            return factory

        return decorator

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def load_plugins(self) -> None:
        """Import the built-in plugin modules and the entry points once."""
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            package = importlib.import_module(self._builtin_package)
            for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
                if not module.name.startswith("_"):
                    importlib.import_module(f"{self._builtin_package}.{module.name}")
            for point in entry_points(group=self._entry_point_group):
                loaded = point.load()
                if point.name not in self._entries and callable(loaded):
                    self.register(point.name, description=_first_line(loaded.__doc__),
                                  family=getattr(loaded, "family", None),
                                  test_params=getattr(loaded, "test_params", None))(loaded)
            self._loaded = True
        finally:
            self._loading = False

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._entries)

    def get(self, name: str) -> Entry:
        self.load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            known = self.names()
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(known)}"
            ) from None

    def list(self, pattern: str = "*") -> list[Entry]:
        """Entries whose name matches the shell-style ``pattern``, sorted by name."""
        return [self._entries[n] for n in self.names() if fnmatch.fnmatchcase(n, pattern)]

    def create(self, name: str, **params: Any) -> Any:
        return self.get(name).create(**params)


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if (doc or "").strip() else ""


method_registry = Registry("method", "ssvh_bench.methods", "ssvh_bench.methods")
dataset_registry = Registry("dataset", "ssvh_bench.datasets", "ssvh_bench.datasets")

register_method = method_registry.register
register_dataset = dataset_registry.register
