"""Executes runs: load the dataset, fit the method, encode, evaluate, write the run folder."""

from __future__ import annotations

import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from . import results
from .codes import check_bits, check_codes, pack_codes
from .config import RunSpec, resolve_params
from .io import canonical_json, read_json, write_json
from .data import DatasetSplits
from .errors import ConfigError, DataError
from .metrics import DEFAULT_KS, evaluate
from .registry import dataset_registry, method_registry


@dataclass
class RunOutcome:
    spec: RunSpec
    folder: Path
    skipped: bool
    metrics: dict[str, Any]


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks CUDA when present, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class DatasetCache:
    """Loads each (dataset, parameters, root) once per process; sweeps reuse the splits."""

    def __init__(self, data_root: Path | None = None) -> None:
        self.data_root = data_root
        self._loaded: dict[str, DatasetSplits] = {}

    def get(self, name: str, params: dict[str, Any]) -> DatasetSplits:
        key = canonical_json([name, params])
        if key not in self._loaded:
            splits = dataset_registry.create(name, **params).load(self.data_root)
            for split_name, split in (("train", splits.train), ("database", splits.database), ("query", splits.query)):
                if split is not None:
                    split.check_finite(f"{name} {split_name} features")
            self._loaded[key] = splits
        return self._loaded[key]


def execute_run(
    spec: RunSpec,
    *,
    results_dir: Path,
    datasets: DatasetCache,
    device: str = "auto",
    force: bool = False,
    progress: bool = False,
) -> RunOutcome:
    folder = results.run_dir(results_dir, spec)
    if results.is_finished(folder) and not force:
        return RunOutcome(spec, folder, True, read_json(folder / results.METRICS_FILE))
    splits = datasets.get(spec.dataset, spec.dataset_params)
    if force and folder.exists():
        shutil.rmtree(folder)
    device = resolve_device(device)
    write_json(folder / results.CONFIG_FILE, run_config(spec, device, datasets.data_root))

    method = method_registry.create(spec.method, **spec.method_params)
    started = time.perf_counter()
    method.fit(splits.train, bits=spec.bits, seed=spec.seed, device=device, progress=progress, workdir=folder,
               cache_dir=Path(results_dir) / "cache")
    train_seconds = time.perf_counter() - started

    started = time.perf_counter()
    database_codes = _encode(method, splits.database, spec.bits, "database")
    query_codes = None if splits.query is None else _encode(method, splits.query, spec.bits, "query")
    n_encoded = len(splits.database) + (0 if splits.query is None else len(splits.query))
    encode_ms = 1000 * (time.perf_counter() - started) / n_encoded

    metrics = evaluate(
        database_codes if query_codes is None else query_codes,
        database_codes,
        splits.query_label_matrix,
        splits.database_labels,
        query_is_database=splits.query_is_database,
        progress=progress,
    )
    metrics.update(train_seconds=train_seconds, encode_ms_per_video=encode_ms, n_params=method.n_parameters)
    results.save_codes(
        folder / results.CODES_FILE,
        pack_codes(database_codes),
        splits.database_labels,
        None if query_codes is None else pack_codes(query_codes),
        splits.query_labels,
    )
    write_json(folder / results.METRICS_FILE, metrics)
    return RunOutcome(spec, folder, False, metrics)


def evaluate_checkpoint(
    method_name: str,
    checkpoint: Path,
    dataset: str,
    data_root: Path | None = None,
    *,
    bits: int = 64,
    method_params: dict[str, Any] | None = None,
    dataset_params: dict[str, Any] | None = None,
    device: str = "auto",
    ks: tuple[int, ...] | list[int] = DEFAULT_KS,
    normalizer: str = "k",
    strict: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Metrics of a trained deep method's weights (e.g. a released checkpoint) on a dataset's protocol.

    Builds ``method_name`` with its defaults for ``dataset`` (plus ``method_params``), loads the weights,
    encodes the query and database splits and evaluates them; nothing is trained and nothing is written.
    """
    bits = check_bits(bits)
    splits = DatasetCache(data_root).get(dataset, resolve_params(dataset_registry.get(dataset), dataset_params or {}))
    entry = method_registry.get(method_name)
    method = entry.create(**resolve_params(entry, method_params or {}, dataset=dataset))
    if not hasattr(method, "load_checkpoint"):
        raise ConfigError(f"{method_name} is a {entry.family} method; only deep methods load checkpoints")
    n_frames = max(split.n_frames for split in (splits.database, splits.query) if split is not None)
    method.load_checkpoint(Path(checkpoint), bits=bits, n_frames=n_frames, feature_dim=splits.database.feature_dim,
                           device=resolve_device(device))
    database_codes = _encode(method, splits.database, bits, "database")
    query_codes = database_codes if splits.query is None else _encode(method, splits.query, bits, "query")
    return evaluate(query_codes, database_codes, splits.query_label_matrix, splits.database_labels, ks=ks,
                    normalizer=normalizer, strict=strict, query_is_database=splits.query_is_database,
                    progress=progress)


def _encode(method: Any, videos: Any, bits: int, split: str) -> np.ndarray:
    codes = check_codes(method.encode(videos), what=f"{split} codes")
    if codes.shape != (len(videos), bits):
        raise DataError(f"method returned {split} codes of shape {codes.shape}, expected {(len(videos), bits)}")
    return codes


def run_config(spec: RunSpec, device: str, data_root: Path | None) -> dict[str, Any]:
    """The resolved configuration plus everything needed to trace the run back to its environment."""
    return {
        **spec.to_dict(),
        "device": device,
        "data_root": None if data_root is None else str(data_root),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "versions": _versions(),
        "host": platform.node(),
    }


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("ssvh-bench", "numpy", "torch", "scikit-learn", "faiss-cpu"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def _git_commit() -> str | None:
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=source, capture_output=True,
            text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit
