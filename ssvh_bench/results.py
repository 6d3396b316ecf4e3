"""Run folders on disk: their layout, finished/unfinished state, ``codes.npz``, and the leaderboard.

Layout: ``<results>/runs/<dataset>/<bits>/<method>/<run-id>/`` holding ``config.json`` (written when the run
starts), ``history.csv`` and ``checkpoints/`` (deep methods, while training), ``codes.npz`` and finally
``metrics.json``. A run is finished exactly when ``metrics.json`` exists, and every file is written to a
temporary name and renamed, so a crash never leaves a file half-written or a run that looks finished.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import numpy as np

from .codes import PackedCodes
from .config import RunSpec
from .errors import DataError
from .io import read_json, write_bytes

if TYPE_CHECKING:
    import pandas as pd

CONFIG_FILE, METRICS_FILE, CODES_FILE, HISTORY_FILE = "config.json", "metrics.json", "codes.npz", "history.csv"
LEADERBOARD_FILE = "leaderboard.csv"


def default_results_dir() -> Path:
    return Path(os.environ.get("SSVH_BENCH_RESULTS", "results"))


def run_dir(results_dir: Path, spec: RunSpec) -> Path:
    return Path(results_dir) / "runs" / spec.dataset / str(spec.bits) / spec.method / spec.run_id


def is_finished(folder: Path) -> bool:
    """Finished: ``metrics.json`` and ``config.json`` parse, and ``codes.npz`` matches the checksum that
    ``metrics.json`` records. A damaged run counts as not finished, so running it again redoes it."""
    return read_finished(folder) is not None


def read_finished(folder: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(config, metrics) of a finished run; None for a run that is unfinished or damaged."""
    folder = Path(folder)
    try:
        metrics, config = read_json(folder / METRICS_FILE), read_json(folder / CONFIG_FILE)
        recorded = metrics["codes_sha256"] if isinstance(metrics, dict) else None
        if not isinstance(config, dict) or recorded is None or file_sha256(folder / CODES_FILE) != recorded:
            return None
    except (OSError, ValueError, KeyError):
        return None
    return config, metrics


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_codes(
    path: Path,
    database: PackedCodes,
    database_labels: np.ndarray,
    query: PackedCodes | None = None,
    query_labels: np.ndarray | None = None,
) -> None:
    """Packed codes and bit-packed labels, enough to recompute every metric without retraining.

    ``query is None`` records the FCVID protocol (the database queries itself).
    """
    arrays: dict[str, np.ndarray] = {"bits": np.array(database.bits), "n_classes": np.array(database_labels.shape[1])}
    for split, codes, labels in (("database", database, database_labels), ("query", query, query_labels)):
        if codes is None:
            continue
        arrays[f"{split}_signs"] = codes.signs
        if codes.nonzero is not None:
            arrays[f"{split}_nonzero"] = codes.nonzero
        arrays[f"{split}_labels"] = np.packbits(np.asarray(labels) != 0, axis=1)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes(path, buffer.getvalue())


def load_codes(path: Path) -> dict[str, Any]:
    """Inverse of ``save_codes``: PackedCodes and bool label matrices; query entries are None if shared."""
    path = Path(path)
    if path.is_dir():
        path = path / CODES_FILE
    if not path.is_file():
        raise DataError(f"no saved codes at {path}")
    with np.load(path) as data:
        bits, n_classes = int(data["bits"]), int(data["n_classes"])
        out: dict[str, Any] = {"bits": bits}
        for split in ("database", "query"):
            if f"{split}_signs" not in data:
                out[split], out[f"{split}_labels"] = None, None
                continue
            nonzero = data[f"{split}_nonzero"] if f"{split}_nonzero" in data else None
            out[split] = PackedCodes(data[f"{split}_signs"], bits, nonzero)
            out[f"{split}_labels"] = np.unpackbits(data[f"{split}_labels"], axis=1, count=n_classes).astype(bool)
    return out


def iter_finished_runs(results_dir: Path) -> Iterator[tuple[Path, dict[str, Any], dict[str, Any]]]:
    """(folder, config, metrics) of every finished run under ``results_dir``, in path order; a folder whose
    files are damaged or unreadable is skipped with a warning naming it."""
    for metrics_path in sorted((Path(results_dir) / "runs").glob(f"*/*/*/*/{METRICS_FILE}")):
        folder = metrics_path.parent
        finished = read_finished(folder)
        if finished is None:
            warnings.warn(f"skipped {folder}: its metrics.json, config.json or codes.npz is damaged or unreadable "
                          "(running the same command again redoes the run)", stacklevel=2)
            continue
        yield folder, *finished


def leaderboard_frame(results_dir: Path) -> pd.DataFrame:
    """One row per finished run with stable column names (see README, "Leaderboard columns")."""
    import pandas as pd

    rows = []
    for _, config, metrics in iter_finished_runs(results_dir):
        row: dict[str, Any] = {
            "dataset": config["dataset"],
            "method": config["method"],
            "bits": config["bits"],
            "seed": config["seed"],
            "overrides": setting_label(config),
        }
        row.update({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and "@" in k})
        row.update({k: metrics[k] for k in ("oracle_epoch",) if k in metrics})
        row.update({k: metrics.get(k) for k in ("train_seconds", "encode_ms_per_video", "n_params")})
        row.update({"device": config.get("device"), "setting_id": config.get("setting_id", config["run_id"]),
                    "run_id": config["run_id"]})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    metric_columns = sorted((c for c in frame.columns if "@" in c), key=_metric_order)
    leading = ["dataset", "method", "bits", "seed", "overrides"]
    trailing = ["oracle_epoch"] if "oracle_epoch" in frame else []
    trailing += ["train_seconds", "encode_ms_per_video", "n_params", "device", "setting_id", "run_id"]
    return frame[leading + metric_columns + trailing].sort_values(["dataset", "bits", "method", "overrides", "seed"])


def _metric_order(column: str) -> tuple[int, int]:
    name, _, k = column.partition("@")
    order = ["map", "map_tie_aware", "p", "r"]
    if k.endswith("_oracle"):  # selected on test data: after every honest number
        return (len(order) + 1, int(k.removesuffix("_oracle")))
    return (order.index(name) if name in order else len(order), int(k) if k.isdigit() else 0)


def format_overrides(overrides: dict[str, Any]) -> str:
    return ";".join(f"{k}={v}" for k, v in sorted(overrides.items()))


def setting_label(config: dict[str, Any]) -> str:
    """What a run's setting changes from today's defaults, ``k=v;k=v`` (dataset parameters as ``dataset.k``),
    computed from its resolved parameters, never from what was typed; ``version=N`` when the method's
    version has changed since. Falls back to the typed overrides for a method that is no longer registered."""
    from .config import resolve_run_params
    from .errors import SsvhBenchError
    from .io import canonical_json
    from .registry import dataset_registry, method_registry

    try:
        entry = method_registry.get(config["method"])
        defaults = resolve_run_params(entry, {}, dataset=config["dataset"])
        dataset_defaults = dataset_registry.get(config["dataset"]).defaults
    except SsvhBenchError:
        return format_overrides(config.get("overrides", {}))
    def differs(value: Any, default: Any) -> bool:  # as JSON: a tuple default equals the list it was saved as
        return canonical_json(value) != canonical_json(default)

    changed = {k: v for k, v in config.get("method_params", {}).items() if k not in defaults or differs(v, defaults[k])}
    changed.update({f"dataset.{k}": v for k, v in config.get("dataset_params", {}).items()
                    if k not in dataset_defaults or differs(v, dataset_defaults[k])})
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
