"""Codes and metrics of trained methods: a split's codes checked against the contract (with their code health),
the final evaluation of a run, the per-epoch diagnostic of ``--eval-every`` and its "oracle" reading, encoding
time, and the metrics of a checkpoint (``evaluate_checkpoint``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import distributed
from .codes import check_bits, check_codes
from .config import resolve_params
from .checks import DatasetCache
from .data import DatasetSplits
from .devices import resolve_device, search_device
from .errors import ConfigError, DataError
from .health import code_health, health_row
from .metrics import DEFAULT_KS, evaluate
from .registry import dataset_registry, method_registry
from .run_folder import RunFolder

CURVE_KS = (5, 20, 100)  # the cut-offs ``--eval-every`` records per epoch
MIN_TIMED_SECONDS = 0.5  # below this, a timer's resolution and scheduling noise dominate


def encode_split(method: Any, videos: Any, bits: int, split: str) -> np.ndarray:
    """``method``'s codes of one split, checked: int8 in {-1, 0, +1}, shape [videos, bits]."""
    try:
        codes = method.encode(videos)
    except DataError as error:  # the method knows the video, the evaluation the split
        raise DataError(f"{split} split: {error}") from None
    codes = check_codes(codes, what=f"{split} codes")
    if codes.shape != (len(videos), bits):
        raise DataError(f"method returned {split} codes of shape {codes.shape}, expected {(len(videos), bits)}")
    return codes


def encode_database(method: Any, database: Any, bits: int, *, deep: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """The database codes (``encode_split``) and their code health (``ssvh_bench.health``); for a deep method
    whose binariser declares a gradient window, with the share of its inputs inside it."""
    if not deep:
        codes = encode_split(method, database, bits, "database")
        return codes, code_health(codes)
    from .nn.binarize import window_share

    with window_share() as window:
        codes = encode_split(method, database, bits, "database")
    return codes, code_health(codes, window.share)


def evaluate_codes(splits: DatasetSplits, database_codes: Any, query_codes: Any | None = None, *,
                   device: str = "cpu", **protocol: Any) -> dict[str, Any]:
    """The protocol's metrics of a split pair's codes (``query_codes`` None: the database queries itself);
    ``protocol`` goes to ``metrics.evaluate`` (ks, normalizer, strict, progress, threads). The search runs on
    ``device`` when it is a GPU."""
    return evaluate(database_codes if query_codes is None else query_codes, database_codes,
                    splits.query_label_matrix, splits.database_labels, query_is_database=splits.query_is_database,
                    device=search_device(device), **protocol)


class EpochEvaluator:
    """``after_epoch`` for ``DeepMethod.fit``: mAP@5/20/100 of the current codes on the database split (and
    queries) and their code health after every ``every``-th epoch, the last one and before training (epoch
    -1); a diagnostic of how training goes (and when codes begin to collapse), never used to choose the final
    codes. It keeps the per-query AP of the epoch with the best mAP@5 (the first such epoch, as
    ``oracle_metrics`` chooses), so the oracle gets an interval too."""

    def __init__(self, method: Any, splits: DatasetSplits, every: int, device: str = "cpu") -> None:
        self.method, self.splits, self.every, self.device = method, splits, every, device
        self.best_epoch: int | None = None
        self.best_per_query: dict[str, np.ndarray] = {}
        self._best = -1.0

    def __call__(self, epoch: int) -> dict[str, float]:
        method, splits = self.method, self.splits
        if epoch >= 0 and (epoch + 1) % self.every and epoch + 1 != method.epochs:
            return {}
        database, health = encode_database(method, splits.database, method.bits, deep=True)
        query = None if splits.query is None else method.encode(splits.query)
        found = evaluate_codes(splits, database, query, device=self.device, ks=CURVE_KS, per_query=True)
        if found["map@5"] > self._best:
            self._best, self.best_epoch = found["map@5"], epoch
            self.best_per_query = {f"{key}_oracle": values for key, values in found["per_query"].items()}
        return {**{f"map@{k}": found[f"map@{k}"] for k in CURVE_KS}, **health_row(health)}

    def oracle_per_query(self, oracle_epoch: int) -> dict[str, np.ndarray]:
        """Per-query ``map@K_oracle`` when this evaluator saw the oracle's epoch (counted from 1, as
        ``oracle_metrics`` says), else nothing (a resumed run evaluated the earlier epochs in another process)."""
        return self.best_per_query if self.best_epoch is not None and self.best_epoch + 1 == oracle_epoch else {}


def epoch_evaluator(method: Any, splits: DatasetSplits, every: int, device: str = "cpu") -> EpochEvaluator:
    """The ``after_epoch`` hook of ``--eval-every`` (see ``EpochEvaluator``)."""
    return EpochEvaluator(method, splits, every, device)


def oracle_metrics(folder: RunFolder) -> dict[str, Any]:
    """What choosing the checkpoint on test data would have reported, as the released S5VH and AutoSSVH
    trainings do: the evaluated epoch with the best mAP@5 (``oracle_epoch``, counted from 1; 0 = untrained)
    and its ``map@K_oracle``. For comparison with published numbers only: the suite's codes are the last
    epoch's."""
    rows = [row for row in folder.read_history() or [] if row.get("map@5")]
    best = max(rows, key=lambda row: float(row["map@5"]))
    return {"oracle_epoch": int(best["epoch"]) + 1,
            **{f"map@{k}_oracle": float(best[f"map@{k}"]) for k in CURVE_KS}}


def encoding_time(method: Any, database: Any, seconds: float, videos: int) -> tuple[float, int]:
    """ms per video, and how many videos were timed: the first pass over the splits, then more passes over
    the database until at least ``MIN_TIMED_SECONDS`` are measured (fast methods encode thousands of videos
    in a millisecond or two). Under torchrun, encoding is collective and only rank 0 gets here: one pass."""
    while seconds < MIN_TIMED_SECONDS and distributed.world_size() == 1:
        started = time.perf_counter()
        method.encode(database)
        seconds += time.perf_counter() - started
        videos += len(database)
    return 1000 * seconds / videos, videos


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
    encodes the query and database splits and evaluates them; nothing is trained and nothing is written. When
    the weights do not fit the chosen ``variant``, the other variants are tried, and the metrics name the one
    whose shapes fit (``inferred_variant``).
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise DataError(f"no checkpoint file at {checkpoint}")
    bits = check_bits(bits)
    entry = method_registry.get(method_name)
    if entry.family == "shallow":
        raise ConfigError(f"{method_name} is a {entry.family} method; only deep methods load checkpoints")
    params = resolve_params(entry, method_params or {}, dataset=dataset)
    device = resolve_device(device)
    splits = DatasetCache(data_root).get(dataset, resolve_params(dataset_registry.get(dataset), dataset_params or {}))
    n_frames = max(split.n_frames for split in (splits.database, splits.query) if split is not None)
    method = entry.create(**params)
    method.check_params()
    shapes = {"bits": bits, "n_frames": n_frames, "feature_dim": splits.database.feature_dim, "device": device}
    inferred = None
    try:
        method.load_checkpoint(checkpoint, **shapes)
    except DataError as mismatch:
        variants = [v for v in method.param_choices.get("variant", ()) if v != params.get("variant")]
        for variant in variants:
            try:
                method = entry.create(**{**params, "variant": variant}).load_checkpoint(checkpoint, **shapes)
            except DataError:
                continue
            inferred = variant
            break
        else:
            raise mismatch
    database_codes = encode_split(method, splits.database, bits, "database")
    query_codes = None if splits.query is None else encode_split(method, splits.query, bits, "query")
    metrics = evaluate_codes(splits, database_codes, query_codes, device=device, ks=ks, normalizer=normalizer,
                             strict=strict, progress=progress)
    return metrics if inferred is None else {**metrics, "inferred_variant": inferred}
