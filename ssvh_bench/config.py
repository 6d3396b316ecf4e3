"""Run specifications: what a run is, resolved to concrete values, and the stable id derived from it."""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .codes import check_bits
from .errors import ConfigError
from .io import canonical_json
from .precision import check_precision
from .registry import Entry, coerce_param, dataset_registry, method_registry


@dataclass(frozen=True)
class RunSpec:
    """One run: a method with resolved hyper-parameters on a dataset, at one code length and seed.

    ``overrides`` keeps what the user changed from the defaults (shown in leaderboards); the run id hashes
    the fully resolved parameters, so passing a default explicitly yields the same run. ``precision`` and
    ``compile`` (deep methods: how training steps compute, ``ssvh_bench.precision``) change the codes; they
    enter the id only when not at their defaults, so runs made before they existed keep their ids.
    """

    method: str
    dataset: str
    bits: int
    seed: int
    method_params: dict[str, Any] = field(default_factory=dict)
    dataset_params: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    method_version: int = 1
    # transfer: evaluated on another dataset's database and queries (None: on ``dataset``'s own)
    eval_dataset: str | None = None
    eval_dataset_params: dict[str, Any] = field(default_factory=dict)
    # "dataset" / "eval_dataset" -> the fingerprint of files that the parameters do not pin (``Dataset.fingerprint``)
    data_fingerprints: dict[str, str] = field(default_factory=dict)
    # whose per-dataset method defaults were applied (None: ``dataset``'s); not part of the identity
    defaults_from: str | None = None
    precision: str = "auto"
    compile: bool = False

    @property
    def setting_id(self) -> str:
        """The run id without the seed: runs that differ only in their seed share it (the leaderboard's groups)."""
        return self._digest(seed=None)

    @property
    def run_id(self) -> str:
        return f"seed{self.seed}-{self._digest(seed=self.seed)}"

    def _digest(self, seed: int | None) -> str:
        identity = {
            "method": self.method,
            "method_version": self.method_version,
            "dataset": self.dataset,
            "bits": self.bits,
            "seed": seed,
            "method_params": self.method_params,
            "dataset_params": self.dataset_params,
        }
        # only when set, so the ids of runs on one dataset stay what they were before transfer existed
        if self.eval_dataset is not None:
            identity.update(eval_dataset=self.eval_dataset, eval_dataset_params=self.eval_dataset_params)
        if self.data_fingerprints:
            identity["data_fingerprints"] = self.data_fingerprints
        if self.precision != "auto":
            identity["precision"] = self.precision
        if self.compile:
            identity["compile"] = True
        return hashlib.sha1(canonical_json(identity).encode()).hexdigest()[:10]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "dataset": self.dataset,
            "bits": self.bits,
            "seed": self.seed,
            "method_params": self.method_params,
            "dataset_params": self.dataset_params,
            "overrides": self.overrides,
            "method_version": self.method_version,
            "eval_dataset": self.eval_dataset,
            "eval_dataset_params": self.eval_dataset_params,
            "data_fingerprints": self.data_fingerprints,
            "defaults_from": self.defaults_from,
            "precision": self.precision,
            "compile": self.compile,
            "setting_id": self.setting_id,
            "run_id": self.run_id,
        }


def dataset_label(dataset: str, eval_dataset: str | None) -> str:
    """How readers see where a run trained and was evaluated: ``fcvid``, or ``fcvid->yfcc`` for a transfer run."""
    return dataset if eval_dataset is None else f"{dataset}->{eval_dataset}"


def parse_value(text: str) -> Any:
    """Parse one command-line value: numbers, booleans, None and quoted strings; anything else is a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()


def parse_assignments(items: Iterable[str], *, option: str = "--set") -> dict[str, list[Any]]:
    """Parse ``key=v1,v2`` strings into ``{key: [v1, v2]}`` (a single value is a one-item list)."""
    parsed: dict[str, list[Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{option} expects key=value, got {item!r}")
        parsed[key.strip()] = [parse_value(v) for v in value.split(",")]
    return parsed


def parse_list(text: str, *, option: str, cast: type = int) -> list[Any]:
    try:
        return [cast(v) for v in text.split(",") if v.strip()]
    except ValueError:
        kind = {int: "integers", float: "numbers"}.get(cast, f"{cast.__name__} values")
        raise ConfigError(f"{option} expects comma-separated {kind}, e.g. 16,32,64; got {text!r}") from None


def expand_grid(choices: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of ``{key: [values]}`` as a list of ``{key: value}`` (one empty dict if none)."""
    keys = list(choices)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(choices[k] for k in keys))]


def resolve_params(entry: Entry, overrides: Mapping[str, Any], *, dataset: str | None = None) -> dict[str, Any]:
    """Signature defaults, then the plugin's per-dataset defaults, then the user's overrides (type-checked)."""
    defaults = entry.defaults
    per_dataset = entry.dataset_defaults.get(dataset, {}) if dataset else {}
    resolved = {**defaults, **per_dataset}
    for key, value in overrides.items():
        if key not in defaults:
            raise ConfigError(f"{entry.name} has no parameter {key!r}; known: {', '.join(sorted(defaults))}")
        resolved[key] = coerce_param(entry.name, key, value, defaults[key])
    return resolved


def overrides_for(method: str, known: Iterable[str], choices: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
    """The ``--set`` choices that apply to ``method``.

    ``method.key`` applies to that method only; a bare ``key`` applies to every selected method that has the
    parameter, so ``--set epochs=5`` can be given to a mixed list of deep and shallow methods.
    """
    known = set(known)
    selected = {}
    for key, values in choices.items():
        owner, dot, name = key.rpartition(".")
        if dot and owner == method:
            selected[name] = values
        elif not dot and key in known:
            selected.setdefault(key, values)
    return selected


def resolve_run_params(entry: Entry, overrides: Mapping[str, Any], *, dataset: str) -> dict[str, Any]:
    """``resolve_params`` plus what is chosen at run time and changes codes, as the method's
    ``param_resolvers`` decide it (e.g. ``kmeans_backend=auto`` becomes the backend this machine uses: faiss and
    scikit-learn give other codes), so the run id says which."""
    params = resolve_params(entry, overrides, dataset=dataset)
    for name, resolver in entry.param_resolvers.items():
        if params.get(name) == "auto":
            import ssvh_bench

            params[name] = getattr(ssvh_bench, resolver)("auto")
    return params


def check_overrides_used(methods: list[str], choices: Mapping[str, list[Any]]) -> None:
    """Every ``--set`` key must reach at least one selected method (a typo must not pass silently)."""
    for key in choices:
        owner, dot, name = key.rpartition(".")
        if dot:
            if owner not in methods:
                raise ConfigError(f"--set {key}: {owner!r} is not among the selected methods ({', '.join(methods)})")
            entry = method_registry.get(owner)
            if name not in entry.defaults:
                raise ConfigError(f"{owner} has no parameter {name!r}; known: {', '.join(sorted(entry.defaults))}")
        elif not any(key in method_registry.get(m).defaults for m in methods):
            known = sorted({p for m in methods for p in method_registry.get(m).defaults})
            raise ConfigError(f"no selected method has a parameter {key!r}; known: {', '.join(known)}")


def load_config_file(path: Path) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """Read method and dataset parameters from a TOML or JSON file.

    Top-level keys are method parameters (a list value sweeps, like ``--set key=v1,v2``); a table named after
    a method scopes its keys to that method; the table ``dataset`` holds dataset parameters (``slurm`` the
    Slurm launcher's settings, read by ``launchers.slurm_settings_from_file``, and ``options`` execution options
    such as ``logger``, read by ``cli.options.run_options_from_file``). Returns
    ``(method choices, dataset parameters)`` in the form ``make_specs`` takes.
    """
    content = read_config_file(path)
    content.pop("slurm", None)  # the Slurm launcher's settings (``launchers.slurm_settings_from_file``)
    content.pop("options", None)  # execution options (``cli.options.run_options_from_file``)
    dataset = content.pop("dataset", {})
    if not isinstance(dataset, dict):
        raise ConfigError(f"config file {path}: 'dataset' must be a table of dataset parameters")
    choices: dict[str, list[Any]] = {}
    for key, value in content.items():
        if isinstance(value, dict):
            choices.update({f"{key}.{name}": _as_choices(v) for name, v in value.items()})
        else:
            choices[key] = _as_choices(value)
    return choices, dataset


def read_config_file(path: Path) -> dict[str, Any]:
    """The table a TOML or JSON config file holds; a ConfigError when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        if path.suffix == ".json":
            content = json.loads(path.read_text())
        else:
            content = tomllib.loads(path.read_text())
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"config file {path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {error}") from None
    if not isinstance(content, dict):
        raise ConfigError(f"config file {path} must hold a table of parameters")
    return content


def merge_choices(base: Mapping[str, list[Any]], winning: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
    """``winning`` over ``base``; a bare key in ``winning`` also replaces ``base``'s method-scoped ones."""
    bare = {key for key in winning if "." not in key}
    merged = {k: v for k, v in base.items() if k.rpartition(".")[2] not in bare}
    merged.update(winning)
    return merged


def _as_choices(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def make_specs(
    methods: Iterable[str],
    dataset: str,
    bits: Iterable[int],
    seeds: Iterable[int],
    method_overrides: Mapping[str, list[Any]] | None = None,
    dataset_overrides: Mapping[str, Any] | None = None,
    *,
    eval_dataset: str | None = None,
    eval_dataset_overrides: Mapping[str, Any] | None = None,
    data_root: Path | str | None = None,
    precision: str = "auto",
    compile: bool = False,
) -> list[RunSpec]:
    """Every run of the grid, validated before any work starts (unknown names, bad bits, bad params).

    ``method_overrides`` maps parameter names (or ``method.name``) to lists of values; each method sweeps
    the product of the lists that apply to it (see ``overrides_for``). ``eval_dataset``: train on ``dataset``'s
    training split, evaluate on this dataset's database and queries. ``data_root`` is where datasets read from
    files are (their fingerprint enters the run id). ``precision`` and ``compile`` apply to the deep methods (a
    shallow method's runs keep the defaults: they would not change its codes).
    """
    check_precision(precision)
    methods = list(methods)
    dataset_overrides = dict(dataset_overrides or {})
    data_root = None if data_root is None else Path(data_root)
    dataset_params, fingerprint, defaults_from = resolve_dataset(dataset, dataset_overrides, data_root)
    fingerprints = {} if fingerprint is None else {"dataset": fingerprint}
    eval_params: dict[str, Any] = {}
    if eval_dataset is not None:
        eval_params, eval_fingerprint, _ = resolve_dataset(eval_dataset, dict(eval_dataset_overrides or {}), data_root)
        if (eval_dataset, eval_params) == (dataset, dataset_params):
            eval_dataset = None  # evaluating on the training dataset itself is the ordinary run
        elif eval_fingerprint is not None:
            fingerprints["eval_dataset"] = eval_fingerprint
    shown = {f"dataset.{k}": v for k, v in dataset_overrides.items()}
    if eval_dataset is not None:
        shown.update({f"eval_dataset.{k}": v for k, v in (eval_dataset_overrides or {}).items()})
    bits = [check_bits(b) for b in bits]
    seeds = [int(s) for s in seeds]
    if any(s < 0 for s in seeds):
        raise ConfigError(f"seeds must be non-negative integers, got {min(seeds)}")
    choices = dict(method_overrides or {})
    check_overrides_used(methods, choices)
    specs = []
    for method in methods:
        entry = method_registry.get(method)
        for overrides in expand_grid(overrides_for(method, entry.defaults, choices)):
            params = resolve_run_params(entry, overrides, dataset=defaults_from or dataset)
            deep = entry.family != "shallow"
            if deep and precision != "auto" and params.get("amp") is False:
                raise ConfigError(f"{method}: --precision {precision} with amp=False; amp=False already means fp32 "
                                  f"(--precision fp32), so set one of them")
            # shown with the overrides, so leaderboards tell these runs from the default ones
            steps = {"precision": precision} if deep and precision != "auto" else {}
            steps.update({"compile": True} if deep and compile else {})
            for b, seed in itertools.product(bits, seeds):
                specs.append(RunSpec(method, dataset, b, int(seed), params, dataset_params,
                                     {**overrides, **steps, **shown}, entry.version,
                                     eval_dataset=eval_dataset, eval_dataset_params=eval_params if eval_dataset else {},
                                     data_fingerprints=fingerprints, defaults_from=defaults_from,
                                     precision=precision if deep else "auto", compile=compile and deep))
    return specs


def resolve_dataset(name: str, overrides: Mapping[str, Any],
                    data_root: Path | None) -> tuple[dict[str, Any], str | None, str | None]:
    """A dataset's resolved parameters (what it left to its files decided, ``Dataset.resolve``), its data
    fingerprint and whose method defaults apply."""
    entry = dataset_registry.get(name)
    params = resolve_params(entry, overrides)
    plugin = entry.create(**params)
    resolved = plugin.resolve(data_root)
    if resolved is not plugin:
        params = {**params, **resolved.get_params()}
    return params, resolved.fingerprint(data_root), resolved.method_defaults
