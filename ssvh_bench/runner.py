"""Runs: the grid API (``run``), one run (``execute_run``), and metrics of a checkpoint (``evaluate_checkpoint``).

``run`` is what ``ssvh-bench run`` does, from Python. Every run of the grid is validated (names, parameters,
data) before the first one starts; then each run is executed in turn. A finished run is skipped; a run that
fails is recorded in its folder (``error.json`` with the one-line message, ``error.log`` with the traceback)
and, with ``keep_going``, the others go on.
"""

from __future__ import annotations

import logging
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
from .data.on_device import DeviceFeatures, check_choice, plan_data_on_device
from .errors import ConfigError, DataError, SsvhBenchError
from .io import canonical_json, read_json, write_json, write_text
from .metrics import DEFAULT_KS, evaluate
from .registry import dataset_registry, method_registry

log = logging.getLogger(__name__)
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


@dataclass(frozen=True)
class RunOptions:
    """How runs execute, the same for every run of a grid; none of it enters a run's id. ``device``: auto,
    cpu, cuda, cuda:N; ``threads``: torch's threads (None: ``choose_threads``); ``eval_every``: evaluate deep
    methods' codes every N epochs (``epoch_evaluator``); ``data_on_device``: where the training split lives
    (``ssvh_bench.data.on_device``); ``force``: redo finished runs."""

    device: str = "auto"
    threads: int | None = None
    eval_every: int | None = None
    data_on_device: str = "auto"
    force: bool = False


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
    eval_every: int | None = None,
    data_on_device: str = "auto",
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
    (None: automatic, see ``choose_threads``). ``eval_every=N`` evaluates deep methods' intermediate codes on
    the database split every N epochs (a diagnostic recorded in ``history.csv``; see ``epoch_evaluator``).
    ``launcher`` is ``inline`` (here, one run after the other), ``local`` (``jobs`` processes) or ``slurm``
    (one job array; ``slurm`` holds its settings), see ``ssvh_bench.launchers``.
    """
    choices = {key: list(value) if isinstance(value, (list, tuple)) else [value] for key, value in (params or {}).items()}
    specs = [spec for dataset in _as_list(datasets) for spec in
             make_specs(_as_list(methods), dataset, _as_list(bits), _as_list(seeds), choices, dataset_params)]
    from .launchers import launch

    options = RunOptions(device, threads, eval_every, data_on_device, force)
    return launch(specs, options, launcher=launcher, jobs=jobs, slurm=slurm, results_dir=results_dir,
                  data_root=data_root, keep_going=keep_going, on_event=on_event, progress=progress)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value) if isinstance(value, Iterable) else [value]


def run_specs(
    specs: Sequence[RunSpec],
    options: RunOptions = RunOptions(),
    *,
    results_dir: Path | str | None = None,
    data_root: Path | str | None = None,
    keep_going: bool = True,
    on_event: Callable[[RunEvent], None] | None = None,
    progress: bool = False,
) -> list[RunResult]:
    """Execute ``specs`` in order (the engine behind ``run``, ``sweep`` and ``reproduce``)."""
    results_dir = Path(results_dir) if results_dir is not None else results.default_results_dir()
    distributed.setup()  # under torchrun: join the other ranks
    cache = check_specs(specs, options, results_dir=results_dir, data_root=data_root)
    emit = on_event or (lambda event: None)
    outcomes = []
    for index, spec in enumerate(specs, 1):
        emit(RunEvent("start", index, len(specs), spec))
        folder = results.run_dir(results_dir, spec)
        try:
            outcome = execute_run(spec, options, results_dir=results_dir, datasets=cache, progress=progress)
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


MIN_FREE_BYTES = 100 * 2**20


def check_writable(folder: Path) -> None:
    """A ConfigError unless ``folder`` is (or can be made as) a folder this process may write into."""
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        why = "a file is in the way" if existing.exists() and not existing.is_dir() else "permission denied"
        raise ConfigError(f"results dir {folder} is not a writable folder ({why}: {existing})")
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise ConfigError(f"results dir {folder} is on a full disk ({free / 2**20:.0f} MB free; runs need at least "
                          f"{MIN_FREE_BYTES // 2**20} MB for codes, checkpoints and caches)")


CURVE_KS = (5, 20, 100)  # the cut-offs ``--eval-every`` records per epoch


def epoch_evaluator(method: Any, splits: DatasetSplits, every: int,
                    device: str = "cpu") -> Callable[[int], dict[str, float]]:
    """``after_epoch`` for ``DeepMethod.fit``: mAP@5/20/100 of the current codes on the database split (and
    queries) after every ``every``-th epoch, the last one and before training (epoch -1); a diagnostic of
    how training goes, never used to choose the final codes. The search runs on ``device`` if it is a GPU."""

    def after_epoch(epoch: int) -> dict[str, float]:
        if epoch >= 0 and (epoch + 1) % every and epoch + 1 != method.epochs:
            return {}
        database = method.encode(splits.database)
        query = database if splits.query is None else method.encode(splits.query)
        found = evaluate(query, database, splits.query_label_matrix, splits.database_labels, ks=CURVE_KS,
                         query_is_database=splits.query_is_database, device=search_device(device))
        return {f"map@{k}": found[f"map@{k}"] for k in CURVE_KS}

    return after_epoch


def search_device(device: str) -> str | None:
    """Where the evaluation's Hamming search runs: on the run's GPU, else the CPU's popcount path (None)."""
    return device if device.startswith("cuda") else None


def oracle_metrics(history_path: Path) -> dict[str, Any]:
    """What choosing the checkpoint on test data would have reported, as the released S5VH and AutoSSVH
    trainings do: the evaluated epoch with the best mAP@5 (``oracle_epoch``, counted from 1; 0 = untrained)
    and its ``map@K_oracle``. For comparison with published numbers only: the suite's codes are the last
    epoch's."""
    import csv

    with open(history_path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("map@5")]
    best = max(rows, key=lambda row: float(row["map@5"]))
    return {"oracle_epoch": int(best["epoch"]) + 1,
            **{f"map@{k}_oracle": float(best[f"map@{k}"]) for k in CURVE_KS}}


def check_specs(specs: Sequence[RunSpec], options: RunOptions, *, results_dir: Path,
                data_root: Path | str | None) -> "DatasetCache":
    """Surface every input error (names, parameters, data, device, results folder) before the first run writes
    anything; returns the loaded datasets. Launchers call it before handing runs to other processes."""
    cache = DatasetCache(None if data_root is None else Path(data_root))
    if options.device != "auto":  # "auto" cannot fail, and resolving it would load torch for shallow-only grids
        resolve_device(options.device)
    if options.threads is not None:
        choose_threads(options.threads)
    if options.eval_every is not None and options.eval_every < 1:
        raise ConfigError(f"eval_every must be a positive number of epochs, got {options.eval_every}")
    check_choice(options.data_on_device)
    check_writable(results_dir)
    for spec in specs:
        method_registry.create(spec.method, **spec.method_params).check_params()
        if options.force or not results.is_finished(results.run_dir(results_dir, spec)):
            splits = cache.get(spec.dataset, spec.dataset_params)
            deep = method_registry.get(spec.method).family != "shallow"
            if deep and options.data_on_device not in ("auto", "no"):  # does the split fit on the device?
                plan_data_on_device(options.data_on_device, splits.train.shape, resolve_device(options.device))
    return cache


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
            log.info("loading dataset %s", name)
            splits = dataset_registry.create(name, **params).load(self.data_root)
            for split_name, split in (("train", splits.train), ("database", splits.database), ("query", splits.query)):
                if split is not None:
                    if 0 in split.shape:
                        raise DataError(f"{name} {split_name} split has shape {split.shape}: it needs videos, "
                                        "frames and features")
                    split.check_finite(f"{name} {split_name} features")
            self._loaded[key] = splits
        return self._loaded[key]


def execute_run(
    spec: RunSpec,
    options: RunOptions,
    *,
    results_dir: Path,
    datasets: DatasetCache,
    progress: bool = False,
) -> RunResult:
    """One run in its folder, under the folder's ``run.lock``: ``skipped`` if finished, ``running`` if another
    live process holds the lock (a lock left by a dead process on this host is taken over).

    Under torchrun, rank 0 decides (and tells the other ranks) whether the run goes ahead and alone writes
    its folder; the other ranks train and encode with it (see ``ssvh_bench.distributed``)."""
    folder = results.run_dir(results_dir, spec)
    where = {"results_dir": results_dir, "datasets": datasets, "progress": progress}
    if not distributed.is_writer():
        decision = distributed.broadcast(None)
        return (RunResult(spec, folder, decision) if decision != "go"
                else _execute(spec, folder, options, write=False, **where))
    finished = None if options.force else results.read_finished(folder)
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
        finished = None if options.force else results.read_finished(folder)  # it may have finished meanwhile
        if finished is not None:
            distributed.broadcast("skipped")
            return RunResult(spec, folder, "skipped", finished[1])
        locks.remove_temporaries(folder)  # left by a killed run: nobody else writes here while we hold the lock
        return _execute(spec, folder, options, write=True, **where)


def _execute(spec: RunSpec, folder: Path, options: RunOptions, *, results_dir: Path, datasets: DatasetCache,
             progress: bool, write: bool) -> RunResult:
    splits = datasets.get(spec.dataset, spec.dataset_params)
    method = method_registry.create(spec.method, **spec.method_params)
    deep = method_registry.get(spec.method).family != "shallow"
    device = resolve_device(options.device) if deep else "cpu"  # a shallow run never records a device it did not use
    n_threads = choose_threads(options.threads)
    eval_every = options.eval_every
    train = splits.train
    plan = plan_data_on_device(options.data_on_device, train.shape, device) if deep else None
    if write:
        if options.force:
            for old in folder.iterdir():
                if old.is_dir():
                    shutil.rmtree(old)
                elif old.name != locks.RUN_LOCK:
                    old.unlink()
        for stale in (ERROR_FILE, ERROR_LOG):  # a new attempt: an earlier failure no longer describes the run
            (folder / stale).unlink(missing_ok=True)
        config = {**run_config(spec, device, datasets.data_root), "threads": n_threads}
        if deep:
            config["data_on_device"] = plan.dtype or "no"  # float32 / float16 storage on the device, or no
        earlier = _read_config(folder)
        if earlier is not None:  # an interrupted run goes on: keep when it first started, add when it resumed
            config["started_at"] = earlier.get("started_at", config["started_at"])
            config["resumed_at"] = [*earlier.get("resumed_at", []), _now()]
        write_json(folder / results.CONFIG_FILE, config)
        distributed.broadcast("go")  # after the clean-up: the other ranks may now read a checkpoint to resume
    if deep:
        import torch

        torch.set_num_threads(n_threads)
    log.info("%s: training on %d videos (%s)", spec.method, len(train), device)
    started = time.perf_counter()
    if plan is not None:
        log.info("%s: %s", spec.method, plan.message)
        if plan.on_device:
            train = DeviceFeatures(train, device, plan.dtype)
    extra = ({} if not deep or eval_every is None
             else {"after_epoch": epoch_evaluator(method, splits, eval_every, device)})
    method.fit(train, bits=spec.bits, seed=spec.seed, device=device, progress=progress, workdir=folder,
               cache_dir=Path(results_dir) / "cache", **extra)
    train_seconds = time.perf_counter() - started + getattr(method, "resumed_seconds", 0.0)
    del train  # a split held on the device frees its memory for encoding and evaluation
    log.info("%s: encoding %d database%s videos", spec.method, len(splits.database),
             "" if splits.query is None else f" and {len(splits.query)} query")

    started = time.perf_counter()
    database_codes = _encode(method, splits.database, spec.bits, "database")
    query_codes = None if splits.query is None else _encode(method, splits.query, spec.bits, "query")
    n_encoded = len(splits.database) + (0 if splits.query is None else len(splits.query))
    if not write:  # a rank other than 0 under torchrun: rank 0 alone measures and writes
        return RunResult(spec, folder, "finished")
    encode_ms, timed_videos = encoding_time(method, splits.database, time.perf_counter() - started, n_encoded)

    log.info("%s: evaluating", spec.method)
    metrics = evaluate(
        database_codes if query_codes is None else query_codes,
        database_codes,
        splits.query_label_matrix,
        splits.database_labels,
        query_is_database=splits.query_is_database,
        progress=progress,
        device=search_device(device),
    )
    metrics.update(train_seconds=train_seconds, encode_ms_per_video=encode_ms, encode_timed_videos=timed_videos,
                   n_params=method.n_parameters)
    results.save_codes(
        folder / results.CODES_FILE,
        pack_codes(database_codes),
        splits.database_labels,
        None if query_codes is None else pack_codes(query_codes),
        splits.query_labels,
    )
    metrics["codes_sha256"] = results.file_sha256(folder / results.CODES_FILE)
    if extra:
        metrics.update(oracle_metrics(folder / results.HISTORY_FILE))
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
    database_codes = _encode(method, splits.database, bits, "database")
    query_codes = database_codes if splits.query is None else _encode(method, splits.query, bits, "query")
    metrics = evaluate(query_codes, database_codes, splits.query_label_matrix, splits.database_labels, ks=ks,
                       normalizer=normalizer, strict=strict, query_is_database=splits.query_is_database,
                       progress=progress, device=search_device(device))
    return metrics if inferred is None else {**metrics, "inferred_variant": inferred}


MIN_TIMED_SECONDS = 0.5  # below this, a timer's resolution and scheduling noise dominate


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


def _encode(method: Any, videos: Any, bits: int, split: str) -> np.ndarray:
    try:
        codes = method.encode(videos)
    except DataError as error:  # the method knows the video, the runner the split
        raise DataError(f"{split} split: {error}") from None
    codes = check_codes(codes, what=f"{split} codes")
    if codes.shape != (len(videos), bits):
        raise DataError(f"method returned {split} codes of shape {codes.shape}, expected {(len(videos), bits)}")
    return codes


def _read_config(folder: Path) -> dict[str, Any] | None:
    try:
        config = read_json(folder / results.CONFIG_FILE)
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_config(spec: RunSpec, device: str, data_root: Path | None) -> dict[str, Any]:
    """The resolved configuration plus everything needed to trace the run back to its environment."""
    return {
        **spec.to_dict(),
        "device": device,
        "data_root": None if data_root is None else str(data_root),
        "started_at": _now(),
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
