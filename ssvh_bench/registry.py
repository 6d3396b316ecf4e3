"""Name -> plugin registries for methods and datasets.

Plugins register with a decorator; the built-in plugin folders (``methods/`` and ``datasets/``, installed
as ``ssvh_bench.methods`` and ``ssvh_bench.datasets``) are found on first use, and third-party packages add
plugins through the entry-point groups ``ssvh_bench.methods`` and ``ssvh_bench.datasets``.

Built-in plugins are read without importing them where their registration is written in literals (the
decorator's arguments, the constructor's defaults, ``dataset_defaults`` and ``version``): listing methods,
building run ids and reporting input errors then never loads torch. A plugin's module is imported when its
factory is first needed, and its real signature must then equal what was read.
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
import importlib
import importlib.util
import inspect
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnknownNameError

FAMILIES = ("shallow", "deep", "two_stage")
CLASS_METADATA = ("family", "version", "dataset_defaults", "display", "param_resolvers")  # read by the registry


class Entry:
    """One registered plugin; ``factory`` is imported on first use when the entry was read from source."""

    def __init__(self, name: str, description: str, family: str | None = None,
                 test_params: Mapping[str, Any] | None = None, *, factory: Callable[..., Any] | None = None,
                 module: str | None = None, defaults: Mapping[str, Any] | None = None,
                 dataset_defaults: Mapping[str, Mapping[str, Any]] | None = None, version: int = 1,
                 display: Mapping[str, str] | None = None, param_resolvers: Mapping[str, str] | None = None) -> None:
        self.name, self.description, self.family = name, description, family
        self.test_params = dict(test_params or {})
        self._factory, self.module = factory, module
        self._defaults = None if defaults is None else dict(defaults)
        self.dataset_defaults = {k: dict(v) for k, v in (dataset_defaults or {}).items()}
        self.version = version
        self.display = dict(display or {})  # how readers see it (``ssvh_bench.display``)
        self.param_resolvers = dict(param_resolvers or {})  # parameter -> public function deciding its "auto"

    def __repr__(self) -> str:
        return f"Entry({self.name!r}, family={self.family!r})"

    @property
    def factory(self) -> Callable[..., Any]:
        if self._factory is None:
            assert self.module is not None
            importlib.import_module(self.module)  # its decorator attaches the factory (Registry.register)
            if self._factory is None:
                raise RuntimeError(f"{self.module} did not register {self.name!r} on import")
        return self._factory

    @property
    def defaults(self) -> dict[str, Any]:
        """Constructor defaults, read from the factory's signature (sklearn-style)."""
        if self._defaults is None:
            self._defaults = signature_defaults(self.factory)
        return dict(self._defaults)

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


def coerce_param(owner: str, key: str, value: Any, default: Any) -> Any:
    """``value`` converted to the type of the parameter's ``default``; a ConfigError if it cannot be."""
    if default is None or value is None:
        return value
    expected = type(default)
    if expected is bool:
        if isinstance(value, bool):
            return value
    elif expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif expected is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif expected is int and isinstance(value, float) and value.is_integer():
        return int(value)
    elif expected in (str, tuple, list) and isinstance(value, expected):
        return value
    elif expected not in (bool, int, float, str, tuple, list):
        return value
    raise ConfigError(f"{owner}: {key} expects {expected.__name__}, got {value!r}")


class Registry:
    """A registry of one kind of plugin ("method" or "dataset")."""

    def __init__(self, kind: str, builtin_package: str, entry_point_group: str,
                 decorator: str | None = None, known_datasets: Callable[[], Iterable[str]] | None = None) -> None:
        self.kind = kind
        self._builtin_package = builtin_package
        self._entry_point_group = entry_point_group
        self._decorator = decorator  # the decorator's name in plugin sources, e.g. "register_method"
        self._known_datasets = known_datasets  # what ``dataset_defaults`` keys may name
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
        """Decorator registering ``factory`` under ``name``; a name registered twice raises.

        The factory's class attributes ``family``, ``version`` and ``dataset_defaults`` are checked here:
        a family that contradicts the decorator's, per-dataset defaults for unknown datasets or parameters,
        or values the parameter's type rejects are errors at registration, not when a run starts.
        """
        if family is not None and family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")

        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            declared = getattr(factory, "family", None)
            if family is not None and declared is not None and declared != family:
                raise ValueError(f"{self.kind} {name!r}: registered as family {family!r}, but its class "
                                 f"declares {declared!r}")
            existing = self._entries.get(name)
            if existing is not None and existing._factory is None and existing.module == factory.__module__:
                actual = signature_defaults(factory)
                if actual != existing.defaults:  # the source read at listing time and the code disagree
                    raise RuntimeError(f"{self.kind} {name!r}: defaults read from source {existing.defaults} "
                                       f"differ from the imported signature {actual}")
                existing._factory = factory
                return factory
            if existing is not None:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            entry = Entry(name, description, family or declared, test_params, factory=factory,
                          dataset_defaults=getattr(factory, "dataset_defaults", None),
                          version=getattr(factory, "version", 1), display=getattr(factory, "display", None),
                          param_resolvers=getattr(factory, "param_resolvers", None))
            self._check(entry)
            self._entries[name] = entry
            return factory

        return decorator

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def load_plugins(self) -> None:
        """Find the built-in plugins (read from source where possible) and the entry points, once."""
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            spec = importlib.util.find_spec(self._builtin_package)
            folders = [] if spec is None or spec.submodule_search_locations is None else spec.submodule_search_locations
            for path in sorted(p for folder in folders for p in Path(folder).glob("*.py")):
                if path.name.startswith("_"):
                    continue
                module = f"{self._builtin_package}.{path.stem}"
                static = _read_registrations(path, self._decorator) if self._decorator else None
                if static is None:
                    importlib.import_module(module)
                    continue
                for found in static:
                    entry = Entry(module=module, **found)
                    existing = self._entries.get(entry.name)
                    if existing is not None and module in (existing.module, getattr(existing._factory, "__module__", None)):
                        continue  # already read from this source, or imported (and registered) before the first use
                    if existing is not None:
                        raise ValueError(f"{self.kind} {entry.name!r} is already registered")
                    self._check(entry)
                    self._entries[entry.name] = entry
            for point in entry_points(group=self._entry_point_group):
                loaded = point.load()
                if point.name not in self._entries and callable(loaded):
                    self.register(point.name, description=_first_line(loaded.__doc__),
                                  family=getattr(loaded, "family", None),
                                  test_params=getattr(loaded, "test_params", None))(loaded)
            self._loaded = True
        finally:
            self._loading = False

    def _check(self, entry: Entry) -> None:
        if not entry.dataset_defaults:
            return
        known = set(self._known_datasets()) if self._known_datasets else set()
        defaults = entry.defaults
        for dataset, values in entry.dataset_defaults.items():
            if known and dataset not in known:
                raise ValueError(f"{self.kind} {entry.name!r}: dataset_defaults for unknown dataset {dataset!r} "
                                 f"(known: {', '.join(sorted(known))})")
            for key, value in values.items():
                if key not in defaults:
                    raise ValueError(f"{self.kind} {entry.name!r}: dataset_defaults[{dataset!r}] sets {key!r}, "
                                     f"which is not a parameter")
                try:
                    coerce_param(entry.name, key, value, defaults[key])
                except ConfigError as error:
                    raise ValueError(f"dataset_defaults[{dataset!r}]: {error}") from None

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


def _read_registrations(path: Path, decorator: str) -> list[dict[str, Any]] | None:
    """The registrations in a plugin's source, as ``Entry`` keyword arguments, read without importing it.

    None when any registration is not written in literals (or the class inherits its constructor): the
    module is then imported instead.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in tree.body:
        calls = [d for d in getattr(node, "decorator_list", []) if isinstance(d, ast.Call)
                 and (getattr(d.func, "id", None) == decorator or getattr(d.func, "attr", None) == "register")]
        if not calls:
            continue
        if not isinstance(node, ast.ClassDef) or len(calls) > 1:
            return None
        try:
            call = calls[0]
            options = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
            attributes = {t.id: ast.literal_eval(s.value) for s in node.body if isinstance(s, ast.Assign)
                          for t in s.targets if isinstance(t, ast.Name) and t.id in CLASS_METADATA}
            init = next((s for s in node.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
            if init is None or set(options) - {"description", "family", "test_params"}:
                return None
            defaults = _literal_defaults(init.args)
            declared = attributes.get("family")
            if options.get("family") and declared and declared != options["family"]:
                return None  # let registration raise its error
            found.append({"name": ast.literal_eval(call.args[0]), "description": options["description"],
                          "family": options.get("family") or declared, "test_params": options.get("test_params"),
                          "defaults": defaults, "dataset_defaults": attributes.get("dataset_defaults"),
                          "version": attributes.get("version", 1), "display": attributes.get("display"),
                          "param_resolvers": attributes.get("param_resolvers")})
        except (ValueError, KeyError, IndexError, TypeError, SyntaxError):
            return None
    return found


def _literal_defaults(arguments: ast.arguments) -> dict[str, Any]:
    positional = arguments.posonlyargs + arguments.args
    pairs = list(zip(positional[len(positional) - len(arguments.defaults):], arguments.defaults))
    pairs += [(a, d) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d is not None]
    return {a.arg: ast.literal_eval(d) for a, d in pairs}


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if (doc or "").strip() else ""


dataset_registry = Registry("dataset", "ssvh_bench.datasets", "ssvh_bench.datasets", decorator="register_dataset")
method_registry = Registry("method", "ssvh_bench.methods", "ssvh_bench.methods", decorator="register_method",
                           known_datasets=dataset_registry.names)

register_method = method_registry.register
register_dataset = dataset_registry.register
