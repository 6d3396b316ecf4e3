"""Run folders on disk: their layout, finished/unfinished state, ``codes.npz``, and the leaderboard.

Layout: ``<results>/runs/<dataset>/<bits>/<method>/<run-id>/`` holding ``config.json`` (written when the run
starts), ``history.csv`` and ``checkpoints/`` (deep methods, while training), ``codes.npz`` and finally
``metrics.json``. A run is finished exactly when ``metrics.json`` exists, and every file is written to a
temporary name and renamed, so a crash never leaves a file half-written or a run that looks finished.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .codes import PackedCodes
from .config import RunSpec
from .errors import DataError
from .io import read_json, write_bytes

CONFIG_FILE, METRICS_FILE, CODES_FILE, HISTORY_FILE = "config.json", "metrics.json", "codes.npz", "history.csv"
LEADERBOARD_FILE = "leaderboard.csv"


def default_results_dir() -> Path:
    return Path(os.environ.get("SSVH_BENCH_RESULTS", "results"))


def run_dir(results_dir: Path, spec: RunSpec) -> Path:
    return Path(results_dir) / "runs" / spec.dataset / str(spec.bits) / spec.method / spec.run_id


def is_finished(folder: Path) -> bool:
    return (Path(folder) / METRICS_FILE).is_file()


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
    """(folder, config, metrics) of every finished run under ``results_dir``, in path order."""
    for metrics_path in sorted((Path(results_dir) / "runs").glob(f"*/*/*/*/{METRICS_FILE}")):
        folder = metrics_path.parent
        yield folder, read_json(folder / CONFIG_FILE), read_json(metrics_path)


def leaderboard_frame(results_dir: Path) -> pd.DataFrame:
    """One row per finished run with stable column names (see README, "Leaderboard columns")."""
    rows = []
    for _, config, metrics in iter_finished_runs(results_dir):
        row: dict[str, Any] = {
            "dataset": config["dataset"],
            "method": config["method"],
            "bits": config["bits"],
            "seed": config["seed"],
            "overrides": format_overrides(config.get("overrides", {})),
        }
        row.update({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and "@" in k})
        row.update({k: metrics.get(k) for k in ("train_seconds", "encode_ms_per_video", "n_params")})
        row.update({"device": config.get("device"), "run_id": config["run_id"]})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    metric_columns = sorted((c for c in frame.columns if "@" in c), key=_metric_order)
    leading = ["dataset", "method", "bits", "seed", "overrides"]
    trailing = ["train_seconds", "encode_ms_per_video", "n_params", "device", "run_id"]
    return frame[leading + metric_columns + trailing].sort_values(["dataset", "bits", "method", "overrides", "seed"])


def _metric_order(column: str) -> tuple[int, int]:
    name, _, k = column.partition("@")
    order = ["map", "map_tie_aware", "p", "r"]
    return (order.index(name) if name in order else len(order), int(k) if k.isdigit() else 0)


def format_overrides(overrides: dict[str, Any]) -> str:
    return ";".join(f"{k}={v}" for k, v in sorted(overrides.items()))


def aggregate(frame: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each setting, with the number of seeds."""
    keys = ["dataset", "method", "bits", "overrides"]
    grouped = frame.groupby(keys, sort=True, dropna=False)
    table = grouped[metrics].agg(["mean", "std"])
    table.columns = [f"{m}_{stat}" for m, stat in table.columns]
    table["n_seeds"] = grouped.size()
    return table.reset_index()
