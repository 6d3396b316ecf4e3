"""Runs: the grid API (``run``), one run (``execute_run``), and metrics of a checkpoint (``evaluate_checkpoint``).

``run`` is what ``ssvh-bench run`` does, from Python. Every run of the grid is validated (names, parameters,
data) before the first one starts; then each run is executed in turn. A finished run is skipped; a run that
fails is recorded in its folder (``error.json`` with the one-line message, ``error.log`` with the traceback)
and, with ``keep_going``, the others go on.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import numpy as np

from . import distributed, locks, results
from .codes import check_bits, check_codes, pack_codes
from .config import RunSpec, make_specs, resolve_params
from .data import DatasetSplits
from .errors import ConfigError, DataError, SsvhBenchError
from .io import canonical_json, write_json, write_text
from .metrics import DEFAULT_KS, evaluate
from .registry import dataset_registry, method_registry

# "running": another live process holds the run's lock; "submitted": handed to a batch system (Slurm)
RunStatus = Literal["finished", "skipped", "failed", "running", "submitted"]
ERROR_FILE, ERROR_LOG = "error.json", "error.log"


@dataclass
class RunResult:
    """What became of one run: ``finished`` (trained now), ``skipped`` (finished before), ``failed``,
    ``running`` (another process holds its lock; ``error`` says which) or ``submitted`` (a Slurm job)."""

    spec: RunSpec
    folder: Path
    status: RunStatus
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    job_id: str | None = None  # the Slurm job of a ``submitted`` run


@dataclass
class RunEvent:
    """Sent to ``on_event``: ``start`` before a run, then ``finished``, ``skipped`` or ``failed`` with its result."""

    kind: Literal["start", "finished", "skipped", "failed", "running", "submitted"]
    index: int  # 1-based position in the grid
    total: int
    spec: RunSpec
    result: RunResult | None = None


def run(
    methods: str | Sequence[str],
    datasets: str | Sequence[str] = "synthetic",
    bits: int | Sequence[int] = 64,
    seeds: int | Sequence[int] = 0,
    params: Mapping[str, Any] | None = None,
    dataset_params: Mapping[str, Any] | None = None,
    *,
    results_dir: Path | str | None = None,
    data_root: Path | str | None = None,
    device: str = "auto",
    threads: int | None = None,
    force: bool = False,
    keep_going: bool = True,
    on_event: Callable[[RunEvent], None] | None = None,
    progress: bool = False,
    launcher: str = "inline",
    jobs: int = 1,
    slurm: Mapping[str, Any] | None = None,
) -> list[RunResult]:
    """Run every combination of methods x datasets x bits x seeds x parameter values; see the module docstring.

    ``params`` maps a method parameter (or ``method.parameter``) to a value or a list of values to sweep, as
    ``--set`` does; ``dataset_params`` are the datasets' parameters. ``threads`` sets torch's intra-op threads
    (None: automatic, see ``choose_threads``). ``launcher`` is ``inline`` (here, one run after the other),
    ``local`` (``jobs`` processes) or ``slurm`` (one job array; ``slurm`` holds its settings), see
    ``ssvh_bench.launchers``.
    """
    choices = {key: list(value) if isinstance(value, (list, tuple)) else [value] for key, value in (params or {}).items()}
    specs = [spec for dataset in _as_list(datasets) for spec in
             make_specs(_as_list(methods), dataset, _as_list(bits), _as_list(seeds), choices, dataset_params)]
    from .launchers import launch

    return launch(specs, launcher=launcher, jobs=jobs, slurm=slurm, results_dir=results_dir, data_root=data_root,
                  device=device, threads=threads, force=force, keep_going=keep_going, on_event=on_event,
                  progress=progress)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value) if isinstance(value, Iterable) else [value]


def run_specs(
    specs: Sequence[RunSpec],
    *,
    results_dir: Path | str | None = None,
    data_root: Path | str | None = None,
    device: str = "auto",
    threads: int | None = None,
    force: bool = False,
    keep_going: bool = True,
    on_event: Callable[[RunEvent], None] | None = None,
    progress: bool = False,
) -> list[RunResult]:
    """Execute ``specs`` in order (the engine behind ``run``, ``sweep`` and ``reproduce``)."""
    results_dir = Path(results_dir) if results_dir is not None else results.default_results_dir()
    distributed.setup()  # under torchrun: join the other ranks
    cache = DatasetCache(None if data_root is None else Path(data_root))
    for spec in specs:  # every input error surfaces before the first run writes anything
        if not results.is_finished(results.run_dir(results_dir, spec)) or force:
            cache.get(spec.dataset, spec.dataset_params)
    if device != "auto":  # "auto" cannot fail, and resolving it would load torch for shallow-only grids
        resolve_device(device)
    if threads is not None:
        choose_threads(threads)
    emit = on_event or (lambda event: None)
    outcomes = []
    for index, spec in enumerate(specs, 1):
        emit(RunEvent("start", index, len(specs), spec))
        folder = results.run_dir(results_dir, spec)
        try:
            outcome = execute_run(spec, results_dir=results_dir, datasets=cache, device=device, threads=threads,
                                  force=force, progress=progress)
        except Exception as error:  # noqa: BLE001  one run's failure is recorded; the grid goes on
            outcome = RunResult(spec, folder, "failed", error=record_failure(folder, error))
            emit(RunEvent("failed", index, len(specs), spec, outcome))
            if not keep_going:
                raise
            outcomes.append(outcome)
            continue
        emit(RunEvent(outcome.status, index, len(specs), spec, outcome))
        outcomes.append(outcome)
    return outcomes


def record_failure(folder: Path, error: BaseException) -> str:
    """Write ``error.json`` (the one-line message) and ``error.log`` (the traceback); return the message."""
    message = one_line(error)
    write_json(folder / ERROR_FILE, {"error": message, "type": type(error).__name__,
                                     "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    write_text(folder / ERROR_LOG, "".join(traceback.format_exception(error)))
    return message


def one_line(error: BaseException) -> str:
    """The message a user sees: input errors as they are, anything else prefixed by its type."""
    text = (str(error).strip().splitlines() or [""])[0]
    return text if isinstance(error, SsvhBenchError) else f"{type(error).__name__}: {text}"


def choose_threads(requested: int | None) -> int:
    """torch's intra-op threads: ``requested``, or 1 on small machines (up to 4 cores), where threads of tiny
    models mostly wait on each other and on other jobs (one thread made ConMH 2-3.5x faster on 2 shared
    cores), else torch's own default."""
    if requested is not None:
        if requested < 1:
            raise ConfigError(f"threads must be at least 1, got {requested}")
        return requested
    cores = os.cpu_count() or 1
    if cores <= 4:
        return 1
    import torch

    return torch.get_num_threads()


DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks CUDA when present, else the CPU; a malformed name or CUDA without CUDA is a ConfigError."""
    if not DEVICE_PATTERN.fullmatch(device):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    if device == "cpu":
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available here")
    return device


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
    threads: int | None = None,
    force: bool = False,
    progress: bool = False,
) -> RunResult:
    """One run in its folder, under the folder's ``run.lock``: ``skipped`` if finished, ``running`` if another
    live process holds the lock (a lock left by a dead process on this host is taken over).

    Under torchrun, rank 0 decides (and tells the other ranks) whether the run goes ahead and alone writes
    its folder; the other ranks train and encode with it (see ``ssvh_bench.distributed``)."""
    folder = results.run_dir(results_dir, spec)
    options = {"results_dir": results_dir, "datasets": datasets, "device": device, "threads": threads,
               "force": force, "progress": progress}
    if not distributed.is_writer():
        decision = distributed.broadcast(None)
        return RunResult(spec, folder, decision) if decision != "go" else _execute(spec, folder, write=False, **options)
    finished = None if force else results.read_finished(folder)
    if finished is not None:
        distributed.broadcast("skipped")
        return RunResult(spec, folder, "skipped", finished[1])
    lock = locks.try_acquire(folder / locks.RUN_LOCK)
    if lock is None:
        distributed.broadcast("running")
        holder = locks.read_holder(folder / locks.RUN_LOCK) or {}
        return RunResult(spec, folder, "running", error=f"running in process {holder.get('pid', '?')} on "
                                                        f"{holder.get('host', '?')} since {holder.get('started_at', '?')}")
    with lock:
        finished = None if force else results.read_finished(folder)  # it may have finished while we looked
        if finished is not None:
            distributed.broadcast("skipped")
            return RunResult(spec, folder, "skipped", finished[1])
        locks.remove_temporaries(folder)  # left by a killed run: nobody else writes here while we hold the lock
        return _execute(spec, folder, write=True, **options)


def _execute(spec: RunSpec, folder: Path, *, results_dir: Path, datasets: DatasetCache, device: str,
             threads: int | None, force: bool, progress: bool, write: bool) -> RunResult:
    splits = datasets.get(spec.dataset, spec.dataset_params)
    method = method_registry.create(spec.method, **spec.method_params)
    deep = method_registry.get(spec.method).family != "shallow"
    device = resolve_device(device) if deep else "cpu"  # a shallow run never records a device it did not use
    n_threads = choose_threads(threads)
    if write:
        if force:
            for old in folder.iterdir():
                if old.is_dir():
                    shutil.rmtree(old)
                elif old.name != locks.RUN_LOCK:
                    old.unlink()
        for stale in (ERROR_FILE, ERROR_LOG):  # a new attempt: an earlier failure no longer describes the run
            (folder / stale).unlink(missing_ok=True)
        write_json(folder / results.CONFIG_FILE, {**run_config(spec, device, datasets.data_root), "threads": n_threads})
        distributed.broadcast("go")  # after the clean-up: the other ranks may now read a checkpoint to resume
    if deep:
        import torch

        torch.set_num_threads(n_threads)
    started = time.perf_counter()
    method.fit(splits.train, bits=spec.bits, seed=spec.seed, device=device, progress=progress, workdir=folder,
               cache_dir=Path(results_dir) / "cache")
    train_seconds = time.perf_counter() - started

    started = time.perf_counter()
    database_codes = _encode(method, splits.database, spec.bits, "database")
    query_codes = None if splits.query is None else _encode(method, splits.query, spec.bits, "query")
    n_encoded = len(splits.database) + (0 if splits.query is None else len(splits.query))
    encode_ms = 1000 * (time.perf_counter() - started) / n_encoded
    if not write:
        return RunResult(spec, folder, "finished")

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
    metrics["codes_sha256"] = results.file_sha256(folder / results.CODES_FILE)
    write_json(folder / results.METRICS_FILE, metrics)
    return RunResult(spec, folder, "finished", metrics)


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
