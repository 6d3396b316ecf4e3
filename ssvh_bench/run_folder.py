"""The run folder: every path in it, how each of its files is written and read, and whether the run finished.

Layout: ``<results>/runs/<dataset>/<bits>/<method>/<run-id>/`` holding ``config.json`` (written when the run
starts), ``history.csv`` and ``checkpoints/last.pt`` (deep methods, while training), ``codes.npz``,
``per_query.npz`` (each query's AP@K, derived from the codes and rebuilt from them when missing or stale) and
finally ``metrics.json``; ``error.json`` and ``error.log`` after a failure, ``run.lock`` while a process works on
it, ``submission.json`` when it was handed to Slurm, ``run.log`` (every progress line, ``ssvh_bench.run_log``)
and, with ``--logger``, ``trackers.json`` (the trackers' run ids) and ``tensorboard/``. A run is finished exactly
when ``metrics.json`` and ``config.json`` parse and ``codes.npz`` matches the checksum that ``metrics.json``
records. Every file is
written to a temporary name and renamed, so a crash never leaves a file half-written or a run that looks
finished. Reading a damaged file is a ``DataError`` whose one line names the file and what is wrong with it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import traceback
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .codes import PackedCodes
from .config import RunSpec
from .errors import DataError, one_line
from .health import HEALTH_COLUMNS
from .io import read_json, write_bytes, write_json, write_text

CONFIG_FILE, METRICS_FILE, CODES_FILE, HISTORY_FILE = "config.json", "metrics.json", "codes.npz", "history.csv"
PER_QUERY_FILE = "per_query.npz"
ERROR_FILE, ERROR_LOG = "error.json", "error.log"
LOCK_FILE, SUBMISSION_FILE = "run.lock", "submission.json"
RUN_LOG, TRACKERS_FILE, TENSORBOARD_DIR = "run.log", "trackers.json", "tensorboard"
CHECKPOINT_DIR, CHECKPOINT_FILE = "checkpoints", "last.pt"
RUNS_DIR = "runs"


def default_results_dir() -> Path:
    return Path(os.environ.get("SSVH_BENCH_RESULTS", "results"))


@dataclass(frozen=True)
class RunFolder:
    """One run's folder (which need not exist yet)."""

    path: Path

    @classmethod
    def of(cls, results_dir: Path | str, spec: RunSpec) -> "RunFolder":
        return cls(Path(results_dir) / RUNS_DIR / spec.dataset / str(spec.bits) / spec.method / spec.run_id)

    @staticmethod
    def all(results_dir: Path | str) -> list["RunFolder"]:
        """Every run folder under ``results_dir``, in path order."""
        return [RunFolder(path) for path in sorted((Path(results_dir) / RUNS_DIR).glob("*/*/*/*")) if path.is_dir()]

    # ---- paths -----------------------------------------------------------------------------------------------
    config = property(lambda self: self.path / CONFIG_FILE)
    metrics = property(lambda self: self.path / METRICS_FILE)
    codes = property(lambda self: self.path / CODES_FILE)
    per_query = property(lambda self: self.path / PER_QUERY_FILE)
    history = property(lambda self: self.path / HISTORY_FILE)
    checkpoint = property(lambda self: self.path / CHECKPOINT_DIR / CHECKPOINT_FILE)
    error = property(lambda self: self.path / ERROR_FILE)
    error_log = property(lambda self: self.path / ERROR_LOG)
    lock = property(lambda self: self.path / LOCK_FILE)
    submission = property(lambda self: self.path / SUBMISSION_FILE)
    run_log = property(lambda self: self.path / RUN_LOG)
    trackers = property(lambda self: self.path / TRACKERS_FILE)  # the experiment trackers' run ids
    tensorboard = property(lambda self: self.path / TENSORBOARD_DIR)

    # ---- reading ---------------------------------------------------------------------------------------------
    def read_config(self) -> dict[str, Any] | None:
        return read_record(self.config)

    def read_metrics(self) -> dict[str, Any] | None:
        return read_record(self.metrics)

    def read_error(self) -> dict[str, Any] | None:
        return read_record(self.error)

    def read_submission(self) -> dict[str, Any] | None:
        return read_record(self.submission)

    def read_trackers(self) -> dict[str, Any] | None:
        return read_record(self.trackers)

    def finished(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(config, metrics) of a finished run; None for a run that is unfinished or damaged (``damage`` says
        why), so running it again redoes it."""
        try:
            return self._finished()
        except DataError:
            return None

    def is_finished(self) -> bool:
        return self.finished() is not None

    def damage(self) -> str | None:
        """Why a run that wrote ``metrics.json`` does not count as finished (one line naming the file); None when
        it is finished or has not got that far."""
        if not self.metrics.exists():
            return None
        try:
            self._finished()
        except DataError as error:
            return str(error)
        return None

    def _finished(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        metrics, config = self.read_metrics(), self.read_config()
        if metrics is None:
            return None
        if config is None:
            raise DataError(f"{self.config} is missing")
        recorded = metrics.get("codes_sha256")
        if recorded is None:
            raise DataError(f"{self.metrics} records no codes_sha256")
        if not self.codes.is_file():
            raise DataError(f"{self.codes} is missing")
        if file_sha256(self.codes) != recorded:
            raise DataError(f"{self.codes} does not match the checksum that metrics.json records")
        return config, metrics

    def read_history(self) -> list[dict[str, str]] | None:
        """``history.csv``'s rows (values as text); None when there is none."""
        if not self.history.is_file():
            return None
        try:
            with open(self.history, newline="") as handle:
                return list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise DataError(f"{self.history} is damaged or unreadable ({one_line(error)})") from None

    def load_codes(self) -> dict[str, Any]:
        return load_codes(self.codes)

    def read_per_query(self) -> dict[str, Any] | None:
        """``per_query.npz`` as written by ``save_per_query``; None when it is missing or unreadable (it is
        derived from the codes, so a damaged one is rebuilt rather than reported)."""
        try:
            with np.load(self.per_query) as data:
                return {name: data[name] for name in data.files}
        except (FileNotFoundError, EOFError, OSError, ValueError, zipfile.BadZipFile):
            return None

    def save_per_query(self, arrays: dict[str, np.ndarray]) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        write_bytes(self.per_query, buffer.getvalue())

    # ---- writing ---------------------------------------------------------------------------------------------
    def record_failure(self, error: BaseException, log: str | None = None) -> str:
        """Write ``error.json`` (the one-line message) and ``error.log`` (the traceback, or ``log`` when the
        failure happened in another process, e.g. a batch job's stderr); return the message."""
        from .provenance import now

        message = one_line(error)
        write_json(self.error, {"error": message, "type": type(error).__name__, "at": now()})
        write_text(self.error_log, "".join(traceback.format_exception(error)) if log is None else log)
        return message

    def clear_failure(self) -> None:
        """A new attempt: an earlier failure no longer describes the run."""
        self.error.unlink(missing_ok=True)
        self.error_log.unlink(missing_ok=True)

    def clear(self) -> None:
        """Remove everything but the lock (``--force``: the run starts over)."""
        for old in self.path.iterdir():
            if old.is_dir():
                shutil.rmtree(old)
            elif old.name != LOCK_FILE:
                old.unlink()


def read_record(path: Path) -> dict[str, Any] | None:
    """A JSON object file; None when there is none, a DataError naming the file when it is damaged."""
    path = Path(path)
    try:
        value = read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise DataError(f"{path} is damaged or unreadable ({one_line(error)})") from None
    if not isinstance(value, dict):
        raise DataError(f"{path} is damaged: it holds a JSON {type(value).__name__}, not an object")
    return value


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
    """Inverse of ``save_codes`` (``path``: the file or its run folder): PackedCodes and bool label matrices;
    query entries are None if shared. A damaged file is a DataError naming it."""
    path = Path(path)
    if path.is_dir():
        path = path / CODES_FILE
    if not path.is_file():
        raise DataError(f"no saved codes at {path}")
    try:
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
    # EOFError: an empty file (click would turn it into a bare "Aborted!"); the rest: truncated, garbage,
    # pickled or foreign .npz files
    except (EOFError, OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise DataError(f"{path} is damaged or not a codes file written by ssvh-bench ({one_line(error)})") from None
    if out["database"] is None:
        raise DataError(f"{path} is damaged or not a codes file written by ssvh-bench (no database codes)")
    return out


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    """history.csv: epoch, every logged loss (``loss`` first), lr, seconds, videos_per_s, and the evaluation
    columns ``map@K`` and the code-health figures (``ssvh_bench.health``) where ``--eval-every`` evaluated (row -1:
    the untrained model)."""
    keys = [key for key in dict.fromkeys(key for row in history for key in row) if key != "resumed"]
    # evaluation columns (--eval-every: map@K, then code health) last
    columns = sorted(keys, key=lambda key: (key.startswith("map@") or key in HEALTH_COLUMNS) + (key in HEALTH_COLUMNS))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    write_text(path, buffer.getvalue())
