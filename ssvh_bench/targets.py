"""Named reproduction targets, as data (which runs a paper table or figure needs, and what to draw from
them), their runs, and the reports written from their finished runs (``ssvh_bench.api.reproduce`` runs them).
A target never drops a method silently: if one is not registered, it is an error that names every missing
method.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import RunSpec, make_specs
from .errors import ConfigError, UnknownNameError
from .registry import method_registry

TABLES_FOLDER = "tables"


@dataclass(frozen=True)
class Report:
    """One output of a target: ``kind`` is ``table`` or a ``plot`` kind; ``options`` are that kind's options."""

    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    methods: tuple[str, ...]
    bits: tuple[int, ...]
    reports: tuple[Report, ...]
    method_overrides: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)


CONMH_TABLE_METHODS = ("conmh", "bth", "mcmsh", "ssvh", "itq", "lsh", "sh", "pcah")
CONMH_MAIN_METHODS = ("conmh", "bth", "mcmsh", "ssvh", "itq")
CONMH_TABLE_KS = (5, 20, 40, 60, 80, 100)  # the K columns of ConMH's published table
MASK_RATIOS = (0.1, 0.25, 0.5, 0.75, 0.9)

TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target("conmh-table", "ConMH's main table: ConMH and the baselines at 16, 32 and 64 bits",
               CONMH_TABLE_METHODS, (16, 32, 64), (Report("table", {"ks": CONMH_TABLE_KS}),)),
        Target("conmh-mask-ratio", "ConMH's mask-ratio ablation at 64 bits",
               ("conmh",), (64,), (Report("ablation", {"param": "mask_ratio", "ks": (5, 20, 40, 100)}),),
               {"mask_ratio": MASK_RATIOS}),
        Target("conmh-pr", "precision-recall and mAP@K curves of the main methods at 64 bits",
               CONMH_MAIN_METHODS, (64,), (Report("pr"), Report("map-k"))),
        Target("conmh-map-k", "mAP@K curves and mAP against code length of ConMH and the baselines",
               CONMH_TABLE_METHODS, (16, 32, 64), (Report("map-k"), Report("map-bits", {"ks": (20,)}))),
        Target("s5vh-table", "S5VH's main table: S5VH, ConMH and the baselines at 16, 32 and 64 bits",
               ("s5vh", *CONMH_TABLE_METHODS), (16, 32, 64), (Report("table", {"ks": CONMH_TABLE_KS}),)),
        Target("autossvh-table", "AutoSSVH's main table: AutoSSVH beside ConMH and the baselines at 16, 32 and 64 bits",
               ("autossvh",) + CONMH_TABLE_METHODS, (16, 32, 64), (Report("table", {"ks": CONMH_TABLE_KS}),)),
    )
}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise UnknownNameError(f"unknown reproduce target {name!r}; targets: {', '.join(sorted(TARGETS))}") from None


def missing_methods(target: Target) -> list[str]:
    registered = set(method_registry.names())
    return [m for m in target.methods if m not in registered]


def target_specs(target: Target, dataset: str, seeds: list[int],
                 dataset_overrides: Mapping[str, Any] | None = None, *,
                 data_root: Path | str | None = None, precision: str = "auto", compile: bool = False) -> list[RunSpec]:
    """Every run of ``target`` on ``dataset`` (``precision``, ``compile``: as ``make_specs``); an error naming
    all unregistered methods if any are missing."""
    missing = missing_methods(target)
    if missing:
        raise ConfigError(f"reproduce {target.name} needs method(s) that are not registered: {', '.join(missing)} "
                          f"(registered: {', '.join(method_registry.names()) or 'none'})")
    overrides = {key: list(values) for key, values in target.method_overrides.items()}
    return make_specs(target.methods, dataset, target.bits, seeds, overrides, dataset_overrides, data_root=data_root,
                      precision=precision, compile=compile)


def write_reports(target: Target, results_dir: Path, run_ids: list[str]) -> list[Path]:
    """The target's table(s) under ``<results>/tables/<target>/`` and figures under ``<results>/figures/``."""
    from . import plots
    from .leaderboard import load_runs
    from .published import load_published
    from .tables import TABLE_KS, select_runs, write_tables

    frame = select_runs(load_runs(results_dir), run_ids=run_ids)
    written: list[Path] = []
    for report in target.reports:
        options = dict(report.options)
        ks = list(options.pop("ks", TABLE_KS if report.kind == "table" else plots.default_ks(report.kind)))
        if report.kind == "table":
            written += write_tables(frame, results_dir / TABLES_FOLDER / target.name, ks, load_published())
        else:
            figure = plots.make_figure(report.kind, frame, ks=ks, **options)
            written += plots.save_figure(figure, results_dir / plots.FIGURES_FOLDER, f"{target.name}-{report.kind}")
    return written
