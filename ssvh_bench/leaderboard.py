"""The leaderboard: finished runs loaded into one frame (a row per run, stable column names), grouped by setting
and aggregated over seeds, and the labels that name a setting in tables and figures."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import dataset_label, resolve_run_params
from .display import method_label
from .errors import SsvhBenchError
from .health import HEALTH_COLUMNS, code_health, collapse, health_row
from .io import canonical_json
from .per_query import PerQuery, load_per_query
from .registry import dataset_registry, method_registry
from .run_folder import RunFolder
from .stats import estimate

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
LEADERBOARD_FILE = "leaderboard.csv"


def iter_finished_runs(results_dir: Path) -> Iterator[tuple[Path, dict[str, Any], dict[str, Any]]]:
    """(folder, config, metrics) of every finished run under ``results_dir``, in path order; a run folder whose
    files are damaged is skipped with a warning naming the file and what is wrong with it."""
    for folder in RunFolder.all(results_dir):
        finished = folder.finished()
        if finished is None:
            damage = folder.damage()
            if damage is not None:
                log.warning("skipped %s: %s (running the same command again redoes the run)", folder.path, damage)
            continue
        yield folder.path, *finished


def interval_columns(metric: str) -> tuple[str, str]:
    """The columns of ``metric``'s 95% interval (``map@5`` -> ``map@5_ci_low``, ``map@5_ci_high``): over queries
    in a run's row, over seeds and queries in a setting's row."""
    return f"{metric}_ci_low", f"{metric}_ci_high"


def per_query_of(folder: Path | str) -> PerQuery:
    """A finished run's per-query AP (``ssvh_bench.per_query``), by its folder."""
    run = RunFolder(Path(folder))
    return load_per_query(run, run.read_metrics() or {})


def run_intervals(per_query: PerQuery) -> dict[str, float]:
    """95% interval over queries of each mAP@K the run has per-query values of."""
    out: dict[str, float] = {}
    for metric, values in per_query.values.items():
        if len(values) < 2:  # a single query has no spread to estimate
            continue
        found = estimate(values)
        out.update(zip(interval_columns(metric), (found.low, found.high)))
    return out


def leaderboard_frame(results_dir: Path, *, details: bool = False) -> pd.DataFrame:
    """One row per finished run with stable column names (see the docs, "Leaderboard columns"), each mAP@K
    followed by its 95% interval over queries, and the run's ``folder`` last (not written to the CSV).
    ``details`` adds what figures and the report need: ``method_params`` (dict), ``pr_curve`` (dict) and
    ``label``."""
    import pandas as pd

    rows = []
    for folder, config, metrics in iter_finished_runs(results_dir):
        row: dict[str, Any] = {
            "dataset": dataset_label(config["dataset"], config.get("eval_dataset")),
            "method": config["method"],
            "bits": config["bits"],
            "seed": config["seed"],
            "overrides": setting_label(config),
        }
        row.update({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and "@" in k})
        row.update({k: metrics[k] for k in ("oracle_epoch",) if k in metrics})
        row.update({k: metrics.get(k) for k in ("train_seconds", "encode_ms_per_video", "n_params")})
        health, collapsed = _health(folder, metrics, config["bits"])
        row.update({**health_row(health), "collapse": collapsed})
        row.update({"device": config.get("device"), "setting_id": config.get("setting_id", config["run_id"]),
                    "run_id": config["run_id"], "folder": folder})
        row.update(run_intervals(load_per_query(RunFolder(folder), metrics)))
        if details:
            row.update({"method_params": config.get("method_params", {}), "pr_curve": metrics.get("pr_curve"),
                        "label": method_label(row["method"], row["overrides"])})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    intervals = {column for c in frame.columns for column in interval_columns(c)}
    metric_columns = []
    for column in sorted((c for c in frame.columns if "@" in c and c not in intervals), key=_metric_order):
        metric_columns += [column, *(c for c in interval_columns(column) if c in frame)]
    leading = ["dataset", "method", "bits", "seed", "overrides"]
    trailing = ["oracle_epoch"] if "oracle_epoch" in frame else []
    trailing += ["train_seconds", "encode_ms_per_video", "n_params"]
    trailing += [c for c in (*HEALTH_COLUMNS, "collapse") if c in frame]  # in_window: deep methods only
    trailing += ["device", "setting_id", "run_id", "folder"]
    trailing += ["method_params", "pr_curve", "label"] if details else []
    return frame[leading + metric_columns + trailing].sort_values(["dataset", "bits", "method", "overrides", "seed"])


def _health(folder: Path, metrics: dict[str, Any], bits: int) -> tuple[dict[str, Any], str]:
    """A run's code health and what collapsed; for a run made before code health was measured, computed from
    its saved codes (without ``in_window``, which needs the model)."""
    if "health" in metrics:
        return metrics["health"], metrics.get("collapse", "")
    health = code_health(RunFolder(folder).load_codes()["database"].unpack())
    return health, collapse(health, bits)


def load_runs(results_dir: Path) -> pd.DataFrame:
    """The leaderboard frame with its ``details`` (what the figures, tables and report read)."""
    return leaderboard_frame(results_dir, details=True)


def _metric_order(column: str) -> tuple[int, int]:
    name, _, k = column.partition("@")
    order = ["map", "map_tie_aware", "p", "r"]
    if k.endswith("_oracle"):  # selected on test data: after every honest number
        return (len(order) + 1, int(k.removesuffix("_oracle")))
    return (order.index(name) if name in order else len(order), int(k) if k.isdigit() else 0)


def format_overrides(overrides: dict[str, Any]) -> str:
    return ";".join(f"{k}={v}" for k, v in sorted(overrides.items()))


def setting_label(config: dict[str, Any]) -> str:
    """What a run's setting changes from today's defaults, ``k=v;k=v`` (dataset parameters as ``dataset.k``, those
    of a transfer run's evaluation dataset as ``eval_dataset.k``),
    computed from its resolved parameters, never from what was typed; ``version=N`` when the method's
    version has changed since. Falls back to the typed overrides for a method that is no longer registered."""
    try:
        entry = method_registry.get(config["method"])
        defaults = resolve_run_params(entry, {}, dataset=config.get("defaults_from") or config["dataset"])
        dataset_defaults = dataset_registry.get(config["dataset"]).defaults
        eval_defaults = dataset_registry.get(config["eval_dataset"]).defaults if config.get("eval_dataset") else {}
    except SsvhBenchError:
        return format_overrides(config.get("overrides", {}))
    def differs(value: Any, default: Any) -> bool:  # as JSON: a tuple default equals the list it was saved as
        return canonical_json(value) != canonical_json(default)

    changed = {k: v for k, v in config.get("method_params", {}).items() if k not in defaults or differs(v, defaults[k])}
    typed = config.get("overrides", {})
    for prefix, params, own in (("dataset", config.get("dataset_params", {}), dataset_defaults),
                                ("eval_dataset", config.get("eval_dataset_params") or {}, eval_defaults)):
        # an "auto" the dataset decided from its files is no change; one the user typed is
        changed.update({f"{prefix}.{k}": v for k, v in params.items() if k not in own or differs(v, own[k])
                        and (own[k] != "auto" or f"{prefix}.{k}" in typed)})
    if config.get("method_version", 1) != entry.version:
        changed["version"] = config.get("method_version", 1)
    return format_overrides(changed)


def aggregate(frame: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Mean and standard deviation over the seeds of each setting (runs that share a ``setting_id``), with
    the number of seeds. A seed that occurs twice in a setting is counted once (its first run) and listed in
    ``repeated_seeds``: averaging it twice would weigh it double."""
    keys = ["dataset", "method", "bits", "overrides", "setting_id"]
    repeated = frame[frame.duplicated(keys + ["seed"], keep="first")]
    unique = frame.drop_duplicates(keys + ["seed"], keep="first")
    grouped = unique.groupby(keys, sort=True, dropna=False)
    table = grouped[metrics].agg(["mean", "std"])
    table.columns = [f"{m}_{stat}" for m, stat in table.columns]
    table["n_seeds"] = grouped.size()
    twice = repeated.groupby(keys, dropna=False)["seed"].agg(lambda seeds: ",".join(map(str, sorted(set(seeds))))).astype(object)
    table["repeated_seeds"] = twice.reindex(table.index, fill_value="")
    return table.reset_index()
